package photosource

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// statLocal checks a local photo: os.Stat first, so that anything but a
// regular file is refused without being opened, then a read of its head.
func (o *Opener) statLocal(r *ref) (Info, error) {
	f, fi, err := o.openLocalFile(r)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return Info{Size: fi.Size(), ModTime: fi.ModTime()}, err
		}
		return Info{}, err
	}
	defer f.Close()
	info := Info{Size: fi.Size(), ModTime: fi.ModTime()}
	head := make([]byte, min(int64(HeadLen), fi.Size()))
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Info{}, localErr(r, "reading", err)
	}
	info.Head = head[:n]
	return info, nil
}

// openLocal opens a local photo for streaming.
func (o *Opener) openLocal(r *ref) (*Photo, error) {
	f, fi, err := o.openLocalFile(r)
	if err != nil {
		return nil, err
	}
	return newPhoto(f, fi.Size(), r, o.max), nil
}

// openLocalFile stats r's path, refuses anything but a regular file of at
// most MaxBytes before opening it, opens it without blocking and checks again
// what was opened. On ErrTooLarge it returns the FileInfo and no file.
func (o *Opener) openLocalFile(r *ref) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(r.path)
	if err != nil {
		return nil, nil, localErr(r, "", err)
	}
	if err := o.checkLocal(r, fi); err != nil {
		return nil, fi, err
	}
	f, err := os.OpenFile(r.path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, localErr(r, "opening", err)
	}
	// The file may have been replaced since Stat: check what was opened.
	fi, err = f.Stat()
	if err == nil {
		err = o.checkLocal(r, fi)
	} else {
		err = localErr(r, "checking", err)
	}
	if err != nil {
		f.Close()
		return nil, fi, err
	}
	return f, fi, nil
}

// checkLocal refuses anything but a regular file of at most MaxBytes.
func (o *Opener) checkLocal(r *ref, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		what := "not a regular file"
		if fi.IsDir() {
			what = "is a folder"
		} else if fi.Mode()&fs.ModeNamedPipe != 0 {
			what = "not a regular file (named pipe)"
		} else if fi.Mode()&fs.ModeSocket != 0 {
			what = "not a regular file (socket)"
		} else if fi.Mode()&fs.ModeDevice != 0 {
			what = "not a regular file (device)"
		}
		return newErr(r.shown, ErrNotRegular, what, nil)
	}
	if fi.Size() > o.max {
		return tooLarge(r.shown, fi.Size(), o.max)
	}
	return nil
}

// localErr classifies the failure of a file operation on r's path.
func localErr(r *ref, op string, err error) error {
	var pe *fs.PathError
	cause := err
	if errors.As(err, &pe) {
		cause = pe.Err // its message repeats the path
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return newErr(r.shown, ErrNotFound, "no such file", nil)
	case errors.Is(err, fs.ErrPermission):
		return newErr(r.shown, nil, "permission denied", nil)
	}
	msg := "cannot access"
	if op != "" {
		msg = op + " failed"
	}
	e := newErr(r.shown, nil, msg, cause)
	e.Transient = transientCause(err)
	return e
}
