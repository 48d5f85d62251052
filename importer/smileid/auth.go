package smileid

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"bulkenroll/importer/smileid/signature"
)

// SmartSelfie Authentication (job type 2) over REST, in three steps:
// PrepareUpload (POST /v1/upload), Upload (PUT the zip to the upload URL
// the first step handed out), then JobStatus (jobstatus.go) until the job
// is complete.

// AuthJobType is SmartSelfie Authentication's job type.
const AuthJobType = 2

// SourceSDK and SourceSDKVersion say who sends a prepare-upload request.
const (
	SourceSDK        = "rest_api"
	SourceSDKVersion = "1.0.0"
)

// MaxLivenessFrames bounds the liveness frames of one job.
const MaxLivenessFrames = 8

// Prepare is a prepare-upload request: the job to create.
type Prepare struct {
	// UserID is the enrolled user to authenticate; JobID the partner's
	// job ID, unique per job (Smile ID refuses a reused one with 2215).
	UserID, JobID string
	// CallbackURL, when set, receives the final result.
	CallbackURL string
	// Retry asks for a new upload URL for a job prepared before (its
	// job_id already exists) whose zip never arrived.
	Retry bool
}

// Upload is the prepare-upload answer: where to PUT the zip, and the job's
// Smile ID number.
type Upload struct {
	UploadURL  string `json:"upload_url"`
	RefID      string `json:"ref_id"`
	SmileJobID string `json:"smile_job_id"`
	Code       string `json:"code"`
	// Raw is the whole answer as received; the zip's info.json carries it
	// as its server_information.
	Raw json.RawMessage `json:"-"`
}

// prepareBody is the JSON body of POST /v1/upload.
type prepareBody struct {
	SourceSDK        string         `json:"source_sdk"`
	SourceSDKVersion string         `json:"source_sdk_version"`
	FileName         string         `json:"file_name"`
	SmileClientID    string         `json:"smile_client_id"`
	Signature        string         `json:"signature"`
	Timestamp        string         `json:"timestamp"`
	PartnerParams    partnerParams  `json:"partner_params"`
	ModelParameters  map[string]any `json:"model_parameters"`
	CallbackURL      string         `json:"callback_url,omitempty"`
	Retry            bool           `json:"retry,omitempty"`
}

// partnerParams identify a job in the partner's terms.
type partnerParams struct {
	UserID  string `json:"user_id"`
	JobID   string `json:"job_id"`
	JobType int    `json:"job_type"`
}

// zipName is the file name the prepare request announces.
const zipName = "selfie.zip"

// PrepareUpload creates an authentication job: POST {base}/v1/upload,
// signed. It returns the upload URL and the job's Smile ID number, or an
// *APIError (see JobUsedBefore, CannotAuthenticate and Classify) or a
// *TransportError.
func (c *Client) PrepareUpload(ctx context.Context, p Prepare) (*Upload, error) {
	ts := signature.Timestamp(c.now())
	body := prepareBody{
		SourceSDK: SourceSDK, SourceSDKVersion: SourceSDKVersion, FileName: zipName,
		SmileClientID: c.cfg.PartnerID, Timestamp: ts,
		Signature:       signature.Sign(string(c.cfg.APIKey), c.cfg.PartnerID, ts),
		PartnerParams:   partnerParams{UserID: p.UserID, JobID: p.JobID, JobType: AuthJobType},
		ModelParameters: map[string]any{},
		CallbackURL:     p.CallbackURL,
		Retry:           p.Retry,
	}
	resp, data, err := c.postJSON(ctx, "/v1/upload", body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, data)
	}
	var up Upload
	if err := json.Unmarshal(data, &up); err != nil {
		return nil, &APIError{Status: resp.StatusCode, Reason: "the prepare-upload answer is not Smile ID JSON", Excerpt: excerpt(data, 120), NotSmileID: true}
	}
	if up.UploadURL == "" {
		var ea errorAnswer
		_ = json.Unmarshal(data, &ea)
		if code := codeString(ea.Code); code != "" && code != "2202" {
			return nil, &APIError{Status: resp.StatusCode, Code: code, Text: ea.Error}
		}
		return nil, &APIError{Status: resp.StatusCode, Reason: "the prepare-upload answer has no upload_url", Excerpt: excerpt(data, 120), NotSmileID: true}
	}
	up.Raw = append(json.RawMessage(nil), data...)
	return &up, nil
}

// ZipImage is one image of an authentication job: its file name in the
// zip and its bytes (JPEG or PNG, sent unchanged).
type ZipImage struct {
	FileName string
	Data     []byte
}

// AuthZip is what goes into the zip of an authentication job.
type AuthZip struct {
	// UserID and JobID are the job's partner params, as prepared.
	UserID, JobID string
	// CallbackURL is the prepare request's, if any.
	CallbackURL string
	// Selfie is the photo compared with the one on file.
	Selfie ZipImage
	// Liveness are optional liveness frames (at most MaxLivenessFrames).
	Liveness []ZipImage
	// Server is the prepare-upload answer (its Raw bytes).
	Server json.RawMessage
}

// infoJSON is the zip's info.json, as the official server SDKs write it.
type infoJSON struct {
	PackageInformation struct {
		APIVersion struct {
			BuildNumber  int `json:"buildNumber"`
			MajorVersion int `json:"majorVersion"`
			MinorVersion int `json:"minorVersion"`
		} `json:"apiVersion"`
		Language string `json:"language"`
	} `json:"package_information"`
	MiscInformation struct {
		Signature     string        `json:"signature"`
		Timestamp     string        `json:"timestamp"`
		Retry         string        `json:"retry"`
		PartnerParams partnerParams `json:"partner_params"`
		FileName      string        `json:"file_name"`
		SmileClientID string        `json:"smile_client_id"`
		CallbackURL   string        `json:"callback_url"`
	} `json:"misc_information"`
	IDInfo            map[string]string `json:"id_info"`
	Images            []infoImage       `json:"images"`
	ServerInformation json.RawMessage   `json:"server_information"`
}

// infoImage is one entry of info.json's images.
type infoImage struct {
	ImageTypeID int    `json:"image_type_id"`
	Image       string `json:"image"`
	FileName    string `json:"file_name"`
}

// Image type IDs of files in the zip.
const (
	imageSelfieFile   = 0
	imageLivenessFile = 4
)

// BuildAuthZip writes the zip of an authentication job: info.json (signed
// afresh) and the image files, stored flat under distinct names.
func (c *Client) BuildAuthZip(z AuthZip) ([]byte, error) {
	if len(z.Selfie.Data) == 0 {
		return nil, errors.New("authentication zip: no selfie")
	}
	if len(z.Liveness) > MaxLivenessFrames {
		return nil, fmt.Errorf("authentication zip: %d liveness frames, at most %d", len(z.Liveness), MaxLivenessFrames)
	}
	var info infoJSON
	info.PackageInformation.APIVersion.MajorVersion = 2
	info.PackageInformation.Language = "golang"
	ts := signature.Timestamp(c.now())
	m := &info.MiscInformation
	m.Signature, m.Timestamp, m.Retry = signature.Sign(string(c.cfg.APIKey), c.cfg.PartnerID, ts), ts, "false"
	m.PartnerParams = partnerParams{UserID: z.UserID, JobID: z.JobID, JobType: AuthJobType}
	m.FileName, m.SmileClientID, m.CallbackURL = zipName, c.cfg.PartnerID, z.CallbackURL
	info.IDInfo = map[string]string{"entered": "false"}
	info.ServerInformation = z.Server
	if len(info.ServerInformation) == 0 {
		info.ServerInformation = json.RawMessage("{}")
	}
	used := map[string]bool{"info.json": true}
	files := []ZipImage{{FileName: uniqueName(used, z.Selfie.FileName, "selfie", 0), Data: z.Selfie.Data}}
	info.Images = append(info.Images, infoImage{ImageTypeID: imageSelfieFile, FileName: files[0].FileName})
	for i, f := range z.Liveness {
		name := uniqueName(used, f.FileName, "liveness", i+1)
		files = append(files, ZipImage{FileName: name, Data: f.Data})
		info.Images = append(info.Images, infoImage{ImageTypeID: imageLivenessFile, FileName: name})
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) error {
		w, err := zw.Create(name)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	js, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("authentication zip: %w", err)
	}
	if err := add("info.json", js); err != nil {
		return nil, fmt.Errorf("authentication zip: %w", err)
	}
	for _, f := range files {
		if err := add(f.FileName, f.Data); err != nil {
			return nil, fmt.Errorf("authentication zip: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("authentication zip: %w", err)
	}
	return buf.Bytes(), nil
}

// uniqueName returns the base name of name (or kind-i with the image's
// extension) that no earlier file of the zip has.
func uniqueName(used map[string]bool, name, kind string, i int) string {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "" || base == "." || base == "/" {
		base = kind + ".jpg"
	}
	candidate := base
	for n := i; used[candidate]; n++ {
		ext := path.Ext(base)
		candidate = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(base, ext), n, ext)
	}
	used[candidate] = true
	return candidate
}

// Upload PUTs the zip to the upload URL with Content-Type
// application/zip. Success is HTTP 200; anything else is an *APIError (a
// storage service's answer carries no Smile ID code) or *TransportError.
func (c *Client) Upload(ctx context.Context, uploadURL string, zipData []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(zipData))
	if err != nil {
		return fmt.Errorf("upload URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("User-Agent", c.agent)
	resp, err := c.http.Do(req)
	if err != nil {
		return &TransportError{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return &TransportError{Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp, data)
	}
	return nil
}

// postJSON posts body as JSON to the base URL's path and reads the answer.
func (c *Client) postJSON(ctx context.Context, path string, body any) (*http.Response, []byte, error) {
	js, err := json.Marshal(body)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+path, bytes.NewReader(js))
	if err != nil {
		return nil, nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, &TransportError{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, nil, &TransportError{Err: err}
	}
	return resp, data, nil
}

// JobUsedBefore reports whether err is /v1/upload's 2215: the job_id was used
// before. For a job_id the caller made its own, it means an earlier
// request prepared the job (its answer was lost).
func JobUsedBefore(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Reason == "" && ae.Code == "2215"
}

// CannotAuthenticate reports whether err is 2210 (no enrolled user found)
// or 2216 (the enrolled user has no photo on file), from /v1/upload or
// /v1/job_status: the user cannot authenticate. It is a result, not a
// failure of the request. Other refusals are classified by Classify
// (2205, 2214 and 2220 concern the account).
func CannotAuthenticate(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Reason == "" && (ae.Code == "2210" || ae.Code == "2216")
}

// AuthCodeText names the documented reasons a user cannot authenticate.
func AuthCodeText(code string) string {
	switch code {
	case "2210":
		return "no enrolled user found"
	case "2216":
		return "the enrolled user has no photo on file"
	}
	return ""
}
