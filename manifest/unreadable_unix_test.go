//go:build linux

package manifest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the user the unreadable-photo test runs as when the tests run
// as root (as CI does), since root reads a file whatever its mode.
const nobody = 65534

// TestCheckPhotoUnreadableAsNobody runs TestCheckPhotoUnreadable in a copy
// of this test binary under an unprivileged user, so the case is covered
// when the tests themselves run as root.
func TestCheckPhotoUnreadableAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: TestCheckPhotoUnreadable covers the case directly")
	}
	dir, err := os.MkdirTemp("", "manifest-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "manifest.test")
	if err := copyFile(os.Args[0], bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestCheckPhotoUnreadable$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=/tmp", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as user %d: %v\n%s", nobody, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestCheckPhotoUnreadable") {
		t.Fatalf("as user %d the test did not run and pass:\n%s", nobody, out)
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
