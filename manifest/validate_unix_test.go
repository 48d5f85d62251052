//go:build unix

package manifest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if f does not return in time: opening or reading a
// named pipe or a device by mistake would block or run forever.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return: it blocked", what)
		return nil
	}
}

func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe: %v", err)
	}
	zero := filepath.Join(dir, "zero.jpg")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifoLink := filepath.Join(dir, "fifo-link.jpg")
	if err := os.Symlink("fifo.jpg", fifoLink); err != nil {
		t.Fatal(err)
	}
	// A socket path must be short; make it in a short-named folder.
	sockDir, err := os.MkdirTemp("", "bes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s.jpg")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("cannot make a socket: %v", err)
	}
	defer ln.Close()

	tests := []struct {
		path, want string
	}{
		{fifo, "photo: is not a regular file (named pipe)"},
		{fifoLink, "photo: is not a regular file (named pipe)"},
		{zero, "photo: is not a regular file (character device)"},
		{"/dev/null", "photo: is not a regular file (character device)"},
		{sock, "photo: is not a regular file (socket)"},
	}
	v := testValidator()
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			err := within(t, "CheckPhoto", func() error {
				_, err := v.CheckPhoto(&Row{UserID: "u", CreatedAt: "2021-08-12", PhotoPath: tt.path})
				return err
			})
			var re *RowError
			if !errors.As(err, &re) || err.Error() != tt.want {
				t.Errorf("CheckPhoto: got %v, want %s", err, tt.want)
			}
			var buf bytes.Buffer
			err = within(t, "ReadPhoto", func() error { return ReadPhoto(tt.path, 1000, &buf) })
			if !errors.As(err, &re) || err.Error() != tt.want {
				t.Errorf("ReadPhoto: got %v, want %s", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("ReadPhoto read %d bytes", buf.Len())
			}
		})
	}
}

// TestManifestFromPipe reads a manifest from a named pipe, as with
// `bulkenroll run --manifest <(generate-rows)`: its photo paths are relative
// to the working folder, not to the pipe's.
func TestManifestFromPipe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "m.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe: %v", err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.WriteString("user_id,user_created_at,photo\nu1,2021-08-12,a.jpg\n")
		f.Close()
	}()
	err := within(t, "reading a piped manifest", func() error {
		r, err := Open(fifo)
		if err != nil {
			return err
		}
		defer r.Close()
		row, err := r.Next()
		if err != nil {
			return err
		}
		// A pipe has no folder of its own: photos are relative to the
		// working folder, as for standard input.
		if row.PhotoPath != "a.jpg" {
			t.Errorf("PhotoPath %q, want a.jpg (relative to the working folder)", row.PhotoPath)
		}
		return nil
	})
	if err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatal(err)
	}
}
