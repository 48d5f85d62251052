package sandbox

// SmartSelfie Authentication, step two: the PUT of a job's zip to the
// upload URL /v1/upload handed out. Like the pre-signed storage URL it
// stands for, the URL accepts any zip (HTTP 200) once its signature and
// Content-Type match; what the zip holds decides how the job ends.

import (
	"archive/zip"
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
)

// maxZipBytes bounds an uploaded zip: a selfie at the size limit, eight
// liveness frames and info.json fit with room to spare.
const maxZipBytes = 64 << 20

// maxInfoJSON bounds info.json once unpacked (base64 liveness frames
// included).
const maxInfoJSON = 32 << 20

// infoJSON is the part of a zip's info.json the emulator reads. The
// server SDKs send image_type_id as a number, the mobile SDKs as a string;
// package_information, misc_information and server_information are not
// required.
type infoJSON struct {
	Images []infoImage `json:"images"`
}

type infoImage struct {
	ImageTypeID flexInt `json:"image_type_id"`
	Image       string  `json:"image"`
	FileName    string  `json:"file_name"`
}

// putZip serves PUT UploadURLPrefix + ref_id + "/selfie.zip".
func (s *Server) putZip(w http.ResponseWriter, r *http.Request) {
	s.serveAuth(w, r, s.decideZip)
}

// decideZip checks the upload URL and the body, then records the zip and
// how the job will end.
func (s *Server) decideZip(w http.ResponseWriter, r *http.Request) answer {
	refuse := func(status int, text string) answer {
		s.countAuth(func(st *AuthStats) { st.UploadsRefused++ })
		return answer{status: status, body: errBody{Error: text}}
	}
	ref, file, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, UploadURLPrefix), "/")
	s.mu.Lock()
	j := s.auth.refs[ref]
	s.mu.Unlock()
	if j == nil || file != "selfie.zip" {
		return refuse(http.StatusNotFound, "NoSuchUpload: no upload URL "+r.URL.Path+" was handed out")
	}
	if !hmacEqual(r.URL.Query().Get("Signature"), s.uploadSignature(ref)) {
		return refuse(http.StatusForbidden, "SignatureDoesNotMatch: the upload URL's signature is wrong")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/zip" {
		return refuse(http.StatusForbidden, fmt.Sprintf("SignatureDoesNotMatch: the URL is signed for Content-Type application/zip, not %q",
			r.Header.Get("Content-Type")))
	}
	buf := getBuf()
	defer putBuf(buf)
	if a := readBody(w, r, buf, maxZipBytes); a != nil {
		s.countAuth(func(st *AuthStats) { st.UploadsRefused++ })
		return *a
	}
	z := s.inspectZip(buf.Bytes())
	now := s.now()
	s.mu.Lock()
	j.uploads++
	s.auth.stats.Uploads++
	if j.uploadedAt.IsZero() {
		res := z.result
		if res == nil {
			res = s.decideResult(j)
		}
		j.uploaded(now, res)
		j.selfie, j.liveness, j.problem = z.selfie, z.liveness, z.problem
	}
	s.mu.Unlock()
	return answer{status: http.StatusOK}
}

// hmacEqual compares two signatures in constant time.
func hmacEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// zipVerdict is what a zip holds: its selfie and the number of liveness
// frames, or the problem that fails the job and its result.
type zipVerdict struct {
	selfie   *PhotoInfo
	liveness int
	problem  string
	result   *authResult // nil: the zip is usable
}

// inspectZip reads a job's zip: info.json, then the selfie (image_type_id
// 0, a file in the zip named by file_name, or 2, base64 in image), which
// must be a JPEG or PNG within the photo size limit. Liveness frames (4,
// 6) are counted.
func (s *Server) inspectZip(data []byte) zipVerdict {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return zipVerdict{problem: "zip: " + err.Error(), result: resultZipCorrupt}
	}
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		files[f.Name] = f
		if _, ok := files[path.Base(f.Name)]; !ok {
			files[path.Base(f.Name)] = f
		}
	}
	bad := func(res *authResult, format string, a ...any) zipVerdict {
		return zipVerdict{problem: fmt.Sprintf(format, a...), result: res}
	}
	f := files["info.json"]
	if f == nil {
		return bad(resultInfoInvalid, "the zip has no info.json")
	}
	raw, err := readZipFile(f, maxInfoJSON)
	if err != nil {
		return bad(resultZipCorrupt, "info.json: %v", err)
	}
	var info infoJSON
	if err := json.Unmarshal(raw, &info); err != nil {
		return bad(resultInfoInvalid, "info.json: %v", err)
	}
	var v zipVerdict
	var selfies [][]byte
	for i, im := range info.Images {
		switch im.ImageTypeID.N {
		case 0:
			zf := files[im.FileName]
			if im.FileName == "" || zf == nil {
				return bad(resultSelfieUnusable, "images[%d]: the selfie file %q is not in the zip", i, im.FileName)
			}
			if zf.UncompressedSize64 > uint64(s.maxPhoto) {
				return bad(resultSelfieUnusable, "images[%d]: the selfie is larger than the limit of %d bytes", i, s.maxPhoto)
			}
			b, err := readZipFile(zf, s.maxPhoto)
			if err != nil {
				return bad(resultZipCorrupt, "images[%d]: %v", i, err)
			}
			selfies = append(selfies, b)
		case 2:
			b, err := base64.StdEncoding.DecodeString(im.Image)
			if err != nil {
				return bad(resultSelfieUnusable, "images[%d]: the selfie is not valid standard base64", i)
			}
			selfies = append(selfies, b)
		case 4, 6:
			v.liveness++
		}
		if !im.ImageTypeID.Set {
			return bad(resultInfoInvalid, "images[%d]: no image_type_id", i)
		}
	}
	if len(selfies) != 1 {
		return bad(resultSelfieUnusable, "info.json lists %d selfies (image_type_id 0 or 2); one is required", len(selfies))
	}
	text, pi := s.describePhoto(selfies[0])
	if text != "" {
		return bad(resultSelfieUnusable, "selfie: %s", strings.TrimPrefix(text, "photo "))
	}
	v.selfie = &pi
	return v
}

// readZipFile unpacks f, refusing more than limit bytes.
func readZipFile(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name, limit)
	}
	return b, nil
}
