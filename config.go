package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
)

// credentialFlags are the flags of every command that talks to Smile ID.
func credentialFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "partner-id", EnvVars: []string{"SMILE_PARTNER_ID"}, Usage: "Smile ID partner ID"},
		&cli.StringFlag{Name: "api-key-file", EnvVars: []string{"SMILE_API_KEY_FILE"}, Usage: "read the API key from `FILE` (otherwise from $SMILE_API_KEY)"},
		&cli.StringFlag{Name: "env", EnvVars: []string{"SMILE_ENV"}, Value: "sandbox", Usage: "sandbox or production"},
		&cli.StringFlag{Name: "base-url", EnvVars: []string{"SMILE_BASE_URL"}, Usage: "API base `URL`, overrides --env (plain http only for loopback hosts)"},
	}
}

// storeFlag is the checkpoint store's flag.
func storeFlag() cli.Flag {
	return &cli.StringFlag{Name: "store", EnvVars: []string{"BULKENROLL_STORE"}, Value: "bulkenroll.db", Usage: "checkpoint store `FILE`"}
}

// credentials are the raw settings a Config is made from.
type credentials struct {
	PartnerID  string
	APIKeyFile string
	Env        string
	BaseURL    string
}

func credentialsFrom(c *cli.Context) credentials {
	return credentials{
		PartnerID:  c.String("partner-id"),
		APIKeyFile: c.String("api-key-file"),
		Env:        c.String("env"),
		BaseURL:    c.String("base-url"),
	}
}

// given reports whether any credential was given (dry runs use them if so).
func (cr credentials) given() bool {
	return cr.PartnerID != "" || cr.APIKeyFile != "" || os.Getenv("SMILE_API_KEY") != ""
}

// apiKey returns the API key: from the key file when one is named, else
// from SMILE_API_KEY. A trailing newline in the file is dropped.
func (cr credentials) apiKey() (smileid.Secret, error) {
	if cr.APIKeyFile == "" {
		return smileid.Secret(os.Getenv("SMILE_API_KEY")), nil
	}
	b, err := os.ReadFile(cr.APIKeyFile)
	if err != nil {
		return "", fmt.Errorf("%w: reading the API key file: %w", smileid.ErrConfig, err)
	}
	key := strings.TrimRight(string(b), "\r\n \t")
	if key == "" {
		return "", fmt.Errorf("%w: the API key file %s is empty", smileid.ErrConfig, cr.APIKeyFile)
	}
	return smileid.Secret(key), nil
}

// config builds and checks the client configuration.
func (cr credentials) config() (smileid.Config, error) {
	key, err := cr.apiKey()
	if err != nil {
		return smileid.Config{}, err
	}
	cfg := smileid.Config{PartnerID: cr.PartnerID, APIKey: key, Env: cr.Env, BaseURL: cr.BaseURL}
	if err := cfg.Check(); err != nil {
		return smileid.Config{}, err
	}
	return cfg, nil
}

// openProductManifest opens the manifest of product p at path, or reads in
// when path is "-" (photo paths then resolve against the working folder).
func openProductManifest(path string, in io.Reader, p manifest.Product) (*manifest.Reader, error) {
	if path != "-" {
		return manifest.OpenProduct(path, p)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return manifest.NewProductReader(in, wd, p)
}
