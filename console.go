package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// console writes bulkenroll's own messages on standard error: the error a
// command ends with, usage errors and the messages on a signal. In text
// mode they are plain lines; under --log-format json (or
// BULKENROLL_LOG_FORMAT=json) each is one JSON object a line, like the run's
// own records, and no blank line is ever written.
type console struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool         // w is a terminal (a progress bar may be on its last line)
	json *slog.Logger // nil in text mode
}

// newConsole returns a console writing to w in format ("json", or text).
func newConsole(w io.Writer, format string, tty bool) *console {
	c := &console{w: w, tty: tty}
	if format == "json" {
		c.json = slog.New(slog.NewJSONHandler(w, nil))
	}
	return c
}

// install makes the console, in JSON mode, the default logger: what a
// library logs through the log package (net/http's server errors, say)
// then comes as JSON too.
func (c *console) install() {
	if c.json != nil {
		slog.SetDefault(c.json)
	}
}

// logFormatOf returns the log format a command line asks for, before its
// flags are parsed, so that even a flag error can be written in it: the
// last --log-format (or -log-format, with the value after "=" or as the
// next word) before a "--", else env (BULKENROLL_LOG_FORMAT).
func logFormatOf(args []string, env string) string {
	format := env
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "log-format" {
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				break
			}
			i++
			value = args[i]
		}
		format = value
	}
	return strings.TrimSpace(format)
}

// fail reports the error a command ended with, and the exit code it maps to.
func (c *console) fail(err error, code int) {
	var cu *commandUsage
	isUsage := errors.As(err, &cu)
	if c.json != nil {
		attrs := []slog.Attr{slog.String("error", err.Error()), slog.Int("exit_code", code)}
		msg := "error"
		if isUsage {
			msg = "usage error"
			if cu.Command != "" {
				attrs = append(attrs, slog.String("command", cu.Command))
			}
			if cu.Usage != "" {
				attrs = append(attrs, slog.String("usage", cu.Usage))
			}
			attrs = append(attrs, slog.String("help", cu.help()))
		}
		c.log(slog.LevelError, msg, attrs...)
		return
	}
	var b strings.Builder
	if isUsage {
		name := "bulkenroll"
		if cu.Command != "" {
			name += " " + cu.Command
		}
		fmt.Fprintf(&b, "%s: %v\n", name, err)
		if cu.Usage != "" {
			fmt.Fprintf(&b, "usage: %s\n", cu.Usage)
		}
		fmt.Fprintf(&b, "see '%s'\n", cu.help())
	} else {
		fmt.Fprintf(&b, "bulkenroll: %v\n", err)
	}
	c.write(b.String())
}

// interrupted says that the run stops taking rows after signal s.
func (c *console) interrupted(s os.Signal) {
	const msg = "finishing requests in flight and saving (signal again to quit at once)"
	if c.json != nil {
		c.log(slog.LevelWarn, "interrupted: "+msg, slog.String("signal", s.String()))
		return
	}
	lead := ""
	if c.tty {
		lead = "\n" // end the progress bar's line
	}
	c.write(fmt.Sprintf("%sbulkenroll: %v: %s\n", lead, s, msg))
}

// quitting says that a second signal ends the process at once.
func (c *console) quitting(s os.Signal) {
	const msg = "quitting at once; the store is consistent, the next run resumes"
	if c.json != nil {
		c.log(slog.LevelWarn, msg, slog.String("signal", s.String()))
		return
	}
	c.write("bulkenroll: " + msg + "\n")
}

// warn reports a problem that does not change the exit code.
func (c *console) warn(msg string, err error) {
	if c.json != nil {
		c.log(slog.LevelWarn, msg, slog.String("error", err.Error()))
		return
	}
	c.write(fmt.Sprintf("bulkenroll: %s: %v\n", msg, err))
}

func (c *console) log(level slog.Level, msg string, attrs ...slog.Attr) {
	c.json.LogAttrs(context.Background(), level, msg, attrs...)
}

func (c *console) write(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, s)
}
