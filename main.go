// Command bulkenroll enrolls a partner's existing users in Smile ID in bulk
// (job type 4, "backfill users"), from a CSV manifest of user IDs, creation
// dates and photos, with a checkpoint store that makes every run resumable.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"bulkenroll/importer"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errRowsNotDone means the command finished but some rows did not end well
// (rejected or failed rows, invalid rows for validate): exit code 1. The
// command has already said which.
var errRowsNotDone = errors.New("some rows were not enrolled")

// reported wraps an error the command has already reported in its own
// form (a JSON log record): main maps it to its exit code but prints
// nothing more.
type reported struct{ err error }

func (r reported) Error() string { return r.err.Error() }

// Unwrap returns the error reported.
func (r reported) Unwrap() error { return r.err }

// usageError is a command line that cannot be run.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// streams are a command's standard streams, injected so tests can run
// commands without a terminal.
type streams struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	ErrTTY bool // standard error is a terminal
}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	errTTY := isTerminal(os.Stderr)
	con := newConsole(os.Stderr, logFormatOf(os.Args[1:], os.Getenv("BULKENROLL_LOG_FORMAT")), errTTY)
	con.install()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ignoreFileSizeSignal()
	go func() {
		s := <-sigs
		if importing.Load() {
			con.interrupted(s)
		}
		cancel(importer.ErrInterrupted)
		s = <-sigs
		if importing.Load() {
			con.quitting(s)
		}
		os.Exit(130)
	}()
	io := streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, ErrTTY: errTTY}
	err := newApp(io).RunContext(ctx, os.Args)
	code := exitCode(err)
	var rep reported
	if err != nil && code != 1 && !errors.As(err, &rep) {
		con.fail(err, code)
	}
	cancel(nil)
	os.Exit(code)
}

// exitCode maps a command's error to the process exit code; the one place
// that does. 0 all done, 1 finished with rows not done (or stopped by an
// outage longer than --outage-limit), 2 usage,
// configuration, credential or store errors, 130 interrupted.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errRowsNotDone), errors.Is(err, errNotAllAuthenticated), errors.As(err, new(*importer.OutageError)):
		// An outage past --outage-limit: the rows not done stay pending.
		return 1
	case errors.Is(err, importer.ErrInterrupted), errors.Is(err, context.Canceled):
		return 130
	}
	return 2
}

// newApp wires the commands. Every command is strict (see strict): a
// command line it cannot run is a usage error, exit 2, reported on standard
// error only. A bare `bulkenroll` is one too: it names the commands.
func newApp(io streams) *cli.App {
	commands := []*cli.Command{
		runCommand(io),
		validateCommand(io),
		statusCommand(io),
		reportCommand(io),
		verifyCommand(io),
		sandboxCommand(io),
	}
	for _, c := range commands {
		strict(c)
	}
	return &cli.App{
		Name:            "bulkenroll",
		Usage:           "enroll existing users' photos in Smile ID in bulk (job type 4, backfill users)",
		Version:         version,
		Commands:        commands,
		Reader:          io.In,
		Writer:          io.Out,
		ErrWriter:       io.Err,
		ExitErrHandler:  func(*cli.Context, error) {}, // errors are mapped in main, after deferred cleanup
		HideHelpCommand: true,
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &commandUsage{Err: &usageError{flagErrorText(err, c.App.Flags)}}
		},
		Action: func(c *cli.Context) error {
			return unknownCommand(c.App, c.Args().Slice())
		},
		// --help with a stray word (`run --help now`): the help asked for,
		// not "No help topic for 'now'".
		CommandNotFound: func(c *cli.Context, _ string) {
			if c.Command != nil && c.App.Command(c.Command.Name) != nil {
				cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
				return
			}
			_ = cli.ShowAppHelp(c)
		},
	}
}

// importing is set while `run` imports: only then does a signal's message
// speak of requests in flight and saving.
var importing atomic.Bool

// isTerminal reports whether f is a terminal (not merely a character
// device such as /dev/null).
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}
