package main

import (
	"bulkenroll/importer/smileid"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// commandUsage is a usage error of one command (or of bulkenroll itself,
// when Command is ""): main prints its message, then, when Usage is set, the
// command's one-line usage, and a pointer to the command's --help. It never
// prints the whole help: standard output stays for what --json promises.
type commandUsage struct {
	Command string // "run", "validate", ...; "" for bulkenroll itself
	Usage   string // the usage line to show, or "" to show none
	Err     error  // a *usageError
}

func (e *commandUsage) Error() string { return e.Err.Error() }

// Unwrap returns the usage error.
func (e *commandUsage) Unwrap() error { return e.Err }

// help is the command that prints the help of the command concerned.
func (e *commandUsage) help() string {
	if e.Command == "" {
		return "bulkenroll --help"
	}
	return "bulkenroll " + e.Command + " --help"
}

// strict makes cmd refuse a command line it cannot run, before its action
// reads, sends or writes anything: a positional word (no command takes any;
// urfave/cli stops parsing flags at the first one, so the flags after it
// would be ignored), a required flag missing or empty, a flag it does not
// know or a bad flag value. Every such error is a *commandUsage wrapping a
// *usageError (exit 2). A required flag is checked here rather than by
// urfave/cli, which would print the whole help on standard output.
func strict(cmd *cli.Command) *cli.Command {
	cmd.HideHelpCommand = true // `run help` is a stray word, not a subcommand
	var required []string
	for _, f := range cmd.Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Required {
			sf.Required = false
			required = append(required, sf.Name)
		}
	}
	usage, _, _ := strings.Cut(cmd.UsageText, "\n")
	usage = strings.TrimSpace(usage)
	wrap := func(err error, showUsage bool) error {
		cu := &commandUsage{Command: cmd.Name, Err: err}
		if showUsage {
			cu.Usage = usage
		}
		return cu
	}
	cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return wrap(&usageError{flagErrorText(err, cmd.Flags)}, false)
	}
	action := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return wrap(positionalError(c.Args().Slice()), true)
		}
		for _, name := range required {
			switch {
			case !c.IsSet(name):
				return wrap(usagef("--%s is required", name), true)
			case c.String(name) == "":
				return wrap(usagef("--%s is empty", name), true)
			}
		}
		err := action(c)
		var ue *usageError
		var cu *commandUsage
		if errors.As(err, &ue) && !errors.As(err, &cu) {
			return wrap(err, false)
		}
		return err
	}
	return cmd
}

// positionalError names the first stray word of a command line.
func positionalError(words []string) error {
	w := words[0]
	msg := fmt.Sprintf("unexpected argument %s: the command takes no arguments, only flags", strconv.Quote(w))
	switch {
	case len(words) > 1 && strings.HasPrefix(words[1], "-"):
		msg += fmt.Sprintf(" (the flags after it, from %s, would have been ignored)", words[1])
	case strings.HasPrefix(w, "-") && len(w) > 1:
		// after "--", or a negative number
	case w == "help":
		msg += " (for help, use --help)"
	}
	if strings.ContainsAny(w, `/\.`) {
		msg += "; quote a path that contains spaces"
	}
	return &usageError{msg}
}

// flagErrorText rewords the flag package's errors for long flag names
// ("flag provided but not defined: -bogus" → "unknown flag --bogus") and
// suggests the nearest known flag.
func flagErrorText(err error, flags []cli.Flag) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag " + dashes(name)
		if s := nearest(name, flagNames(flags)); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", dashes(s))
		}
		return msg
	}
	for _, prefix := range []string{"flag needs an argument: -", "bad flag syntax: "} {
		if name, ok := strings.CutPrefix(msg, prefix); ok {
			return strings.TrimSuffix(prefix, "-") + dashes(strings.TrimLeft(name, "-"))
		}
	}
	// invalid value "x" for flag -workers: parse error
	if i := strings.Index(msg, " for flag -"); i >= 0 {
		rest := msg[i+len(" for flag -"):]
		name, tail, _ := strings.Cut(rest, ":")
		return msg[:i] + " for flag " + dashes(name) + ":" + tail
	}
	return msg
}

// dashes writes a flag name as it is typed: -m, --manifest.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagNames lists the names of flags, aliases included.
func flagNames(flags []cli.Flag) []string {
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	return names
}

// unknownCommand is the usage error of `bulkenroll WORD` when no command is
// named WORD (with a suggestion when one is near), or of a bare
// `bulkenroll`.
func unknownCommand(app *cli.App, words []string) error {
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	usage := "bulkenroll COMMAND [options], where COMMAND is " + strings.Join(names, ", ")
	if len(words) == 0 {
		return &commandUsage{Usage: usage, Err: usagef("no command given")}
	}
	w := words[0]
	msg := fmt.Sprintf("unknown command %s", strconv.Quote(w))
	if s := nearest(w, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	} else if w == "help" {
		msg += " (for help, use --help)"
	}
	return &commandUsage{Usage: usage, Err: &usageError{msg}}
}

// nearest returns the name closest to word by edit distance, when it is
// close enough to be a typo (at most 2 edits, and fewer than half of the
// word's letters), or a name word is a prefix of; "" if none is.
func nearest(word string, names []string) string {
	word = strings.ToLower(strings.TrimLeft(word, "-"))
	if word == "" {
		return ""
	}
	best, bestD := "", 3
	for _, n := range names {
		if len(n) < 2 {
			continue
		}
		d := editDistance(word, strings.ToLower(n))
		if d < bestD && 2*d < max(len(word), len(n)) {
			best, bestD = n, d
		}
	}
	if best != "" {
		return best
	}
	if len(word) >= 3 {
		for _, n := range names {
			if strings.HasPrefix(strings.ToLower(n), word) {
				return n
			}
		}
	}
	return ""
}

// editDistance is the number of single-byte edits (insertion, deletion,
// substitution, or swap of two neighbours) that turn a into b: the optimal
// string alignment distance, so that "rnu" is one edit from "run".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// checkOutputFile checks, before anything is read or sent, that the file a
// flag names can be written: it is not a folder, and either (inPlace, for a
// file opened and written where it is) an existing file opens for writing,
// or a file can be created in its folder (a temporary one, removed at once;
// for a file replaced by rename, and for a file that does not exist yet).
// A device or a pipe is left to the command to open. Nothing is truncated.
// The error names the flag and the path (exit 2).
func checkOutputFile(flag, path string, inPlace bool) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%w: %s %s is a folder; name a file", smileid.ErrConfig, flag, path)
	case err == nil && !fi.Mode().IsRegular():
		return nil // /dev/stdout, a pipe: opened when used
	case err == nil && inPlace:
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%w: %s %s: %w", smileid.ErrConfig, flag, path, pathCause(err))
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".bulkenroll-check-*")
	if err != nil {
		return fmt.Errorf("%w: %s %s: cannot write in its folder %s: %w", smileid.ErrConfig, flag, path, dir, pathCause(err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%w: %s %s: removing the test file %s: %w", smileid.ErrConfig, flag, path, name, err)
	}
	return nil
}

// pathCause is the cause of a file system error, without the path its
// message repeats.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
