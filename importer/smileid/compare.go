package smileid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"

	"bulkenroll/importer/smileid/signature"
)

// ComparePath is the path of SmartSelfie Compare (v2), under the base URL.
const ComparePath = "/v2/smart-selfie-compare"

// Compare's limits on liveness frames and its comparison image types.
const (
	MinLiveness = 4
	MaxLiveness = 8
)

// ComparisonTypes lists the accepted comparison_image_type values.
var ComparisonTypes = []string{"ID_PHOTO", "PORTRAIT", "DOCUMENT"}

// Image is one image file of a compare request: either its bytes (Data) or
// a way to open it (Open), which the client reads as it writes the body.
type Image struct {
	// Name is the file name sent in the part's Content-Disposition (its
	// base name only); empty gives "image.jpg".
	Name string
	// Data is the file's bytes, used only when Open is nil.
	Data []byte
	// Open, if set, opens the file when the body reaches it; it is called
	// again if the transport must send the body again.
	Open func() (io.ReadCloser, error)
	// Size is the number of bytes Open delivers; -1 if unknown until it is
	// opened (a remote file), in which case the body is sent without a
	// Content-Length. A file that delivers another number of bytes fails
	// the request with ErrPhotoChanged (as a *PhotoError).
	Size int64
}

// CompareRequest is one SmartSelfie Compare job.
type CompareRequest struct {
	// UserID is the user to enroll, sent as user_id and in partner_params.
	UserID string
	// JobID is the partner's job_id, unique per job (Smile ID answers 2215
	// to a job_id it has seen).
	JobID string
	// PartnerParams are extra keys sent in partner_params.
	PartnerParams map[string]string
	// Selfie is the selfie_image; Comparison the comparison_image.
	Selfie, Comparison Image
	// ComparisonType is one of ComparisonTypes.
	ComparisonType string
	// Liveness are the liveness frames, MinLiveness to MaxLiveness of them,
	// each sent as its own liveness_images part.
	Liveness []Image
	// AllowNewEnroll sends allow_new_enroll=true (re-enroll an enrolled user).
	AllowNewEnroll bool
	// CallbackURL, if set, is sent as callback_url.
	CallbackURL string
}

// CompareResult is SmartSelfie Compare's synchronous answer.
type CompareResult struct {
	// Code is the result code: 0840 Face Match, 0841 No Match, 0941 images
	// identical.
	Code string
	// Text is the answer's message.
	Text string
	// Status is "approved" or "rejected".
	Status string
	// SmileJobID is the answer's top-level job_id.
	SmileJobID string
	// JobID is the answer's partner_params.job_id.
	JobID string
	// UserID is the answer's user_id.
	UserID string
}

// Approved reports whether the user was matched and enrolled.
func (r *CompareResult) Approved() bool { return r.Code == "0840" }

// compareAnswer is the part of a compare answer the client reads.
type compareAnswer struct {
	Code          json.RawMessage `json:"code"`
	Message       string          `json:"message"`
	Error         string          `json:"error"`
	Status        string          `json:"status"`
	JobID         json.RawMessage `json:"job_id"`
	UserID        string          `json:"user_id"`
	Timestamp     string          `json:"timestamp"`
	Signature     string          `json:"signature"`
	PartnerParams struct {
		JobID  string `json:"job_id"`
		UserID string `json:"user_id"`
	} `json:"partner_params"`
}

// CheckCompare reports what is wrong with req before anything is sent.
func CheckCompare(req CompareRequest) error {
	switch {
	case req.UserID == "":
		return errors.New("compare: user_id is empty")
	case req.JobID == "":
		return errors.New("compare: job_id is empty")
	case len(req.Liveness) < MinLiveness || len(req.Liveness) > MaxLiveness:
		return fmt.Errorf("compare: %d liveness images, want %d to %d", len(req.Liveness), MinLiveness, MaxLiveness)
	}
	for _, t := range ComparisonTypes {
		if req.ComparisonType == t {
			return nil
		}
	}
	return fmt.Errorf("compare: comparison_image_type %q is not one of %s", req.ComparisonType, strings.Join(ComparisonTypes, ", "))
}

// Compare sends one SmartSelfie Compare job and returns its answer. The
// body is multipart/form-data written as the image files are read: one
// file open at a time, a few KiB of buffer, whatever the images' sizes. The
// request is authenticated by headers (SmileID-Partner-ID,
// SmileID-Timestamp, SmileID-Request-Signature; the same HMAC as backfill).
//
// A 0840 answer returns the result and nil. A 0841 or 0941 answer returns
// the result and an *APIError (Status 200) with the code and text, which
// Classify calls Permanent. Otherwise it returns an *APIError (Endpoint
// EndpointCompare: 2210 is a system error here, 2215 JobExists),
// *TransportError or *PhotoError, as Submit does.
func (c *Client) Compare(ctx context.Context, req CompareRequest) (*CompareResult, error) {
	if err := CheckCompare(req); err != nil {
		return nil, err
	}
	mb, err := newMultipartBody(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body := mb.reader()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+ComparePath, body)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("building the request: %w", err)
	}
	hreq.ContentLength = mb.size()
	if hreq.ContentLength < 0 {
		hreq.ContentLength = -1
	}
	hreq.GetBody = func() (io.ReadCloser, error) { return mb.reader(), nil }
	ts := signature.Timestamp(c.now())
	h := hreq.Header
	h.Set("Content-Type", mb.contentType)
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.agent)
	h.Set("SmileID-Partner-ID", c.cfg.PartnerID)
	h.Set("SmileID-Timestamp", ts)
	h.Set("SmileID-Request-Signature", signature.Sign(string(c.cfg.APIKey), c.cfg.PartnerID, ts))
	resp, data, err := c.do(hreq)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		ae := apiError(resp, data)
		ae.Endpoint = EndpointCompare
		return nil, ae
	}
	return c.compareAnswer(resp.StatusCode, data, req.UserID)
}

// compareAnswer reads a 200 answer of compare. The documented answer is not
// signed; one that carries a timestamp and signature must verify.
func (c *Client) compareAnswer(status int, data []byte, userID string) (*CompareResult, error) {
	fail := func(e *APIError) (*CompareResult, error) {
		e.Status, e.Endpoint = status, EndpointCompare
		return nil, e
	}
	var a compareAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return fail(&APIError{Reason: "the answer is not Smile ID JSON; not counted as enrolled", Excerpt: excerpt(data, 120), NotSmileID: true})
	}
	code := codeString(a.Code)
	if code == "" {
		return fail(&APIError{Reason: "the answer has no result code; not counted as enrolled", Excerpt: excerpt(data, 120), NotSmileID: true})
	}
	if a.Error != "" && a.Message == "" {
		return fail(&APIError{Code: code, Text: a.Error})
	}
	if a.Signature != "" && !signature.Verify(string(c.cfg.APIKey), c.cfg.PartnerID, a.Timestamp, a.Signature) {
		return fail(&APIError{Reason: "the answer's signature does not verify (forged, or another key); not counted as enrolled"})
	}
	answered := a.UserID
	if answered == "" {
		answered = a.PartnerParams.UserID
	}
	if answered != "" && answered != userID {
		return fail(&APIError{Reason: fmt.Sprintf("the answer is for user %q, not %q: an answer to another request (replayed or misrouted); not counted as enrolled", answered, userID), NotSmileID: true, WrongUser: true})
	}
	res := &CompareResult{Code: code, Text: a.Message, Status: a.Status, SmileJobID: codeString(a.JobID),
		JobID: a.PartnerParams.JobID, UserID: answered}
	switch code {
	case "0840":
		return res, nil
	case "0841", "0941":
		e := &APIError{Code: code, Text: a.Message}
		_, err := fail(e)
		return res, err
	}
	return fail(&APIError{Code: code, Text: a.Message, Reason: "unexpected result code"})
}

// multipartBody is a compare request body laid out once: the text of every
// part (headers, fields, boundaries) with the image files between, read
// only when the body reaches them.
type multipartBody struct {
	contentType string
	text        []byte  // every byte of the body that is not an image
	cuts        []int   // where, in text, each image goes
	images      []Image // the image of each cut
}

// newMultipartBody lays out req's parts in the documented order.
func newMultipartBody(req CompareRequest) (*multipartBody, error) {
	mb := &multipartBody{}
	var text bytes.Buffer
	w := multipart.NewWriter(&text)
	mb.contentType = w.FormDataContentType()
	field := func(name, value string) {
		w.WriteField(name, value) // writes into a bytes.Buffer: cannot fail
	}
	file := func(name string, img Image) {
		fn := img.Name
		if fn == "" {
			fn = "image.jpg"
		}
		hdr := make(textproto.MIMEHeader)
		hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, name, escapeQuotes(fn)))
		hdr.Set("Content-Type", contentTypeOf(fn))
		w.CreatePart(hdr)
		mb.cuts = append(mb.cuts, text.Len())
		mb.images = append(mb.images, img)
	}
	params := make(map[string]string, len(req.PartnerParams)+2)
	for k, v := range req.PartnerParams {
		params[k] = v
	}
	params["job_id"], params["user_id"] = req.JobID, req.UserID
	pp, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("compare: partner_params: %w", err)
	}
	field("user_id", req.UserID)
	field("partner_params", string(pp))
	field("comparison_image_type", req.ComparisonType)
	if req.AllowNewEnroll {
		field("allow_new_enroll", "true")
	}
	if req.CallbackURL != "" {
		field("callback_url", req.CallbackURL)
	}
	file("selfie_image", req.Selfie)
	file("comparison_image", req.Comparison)
	for _, l := range req.Liveness {
		file("liveness_images", l)
	}
	w.Close()
	mb.text = text.Bytes()
	return mb, nil
}

func escapeQuotes(s string) string {
	return strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "", "\n", "").Replace(s)
}

// contentTypeOf guesses an image part's type from its file name.
func contentTypeOf(name string) string {
	if strings.HasSuffix(strings.ToLower(name), ".png") {
		return "image/png"
	}
	return "image/jpeg"
}

// size is the body's length, or -1 when an image's size is unknown.
func (mb *multipartBody) size() int64 {
	n := int64(len(mb.text))
	for _, img := range mb.images {
		switch {
		case img.Open == nil:
			n += int64(len(img.Data))
		case img.Size < 0:
			return -1
		default:
			n += img.Size
		}
	}
	return n
}

// reader returns a fresh reader of the whole body.
func (mb *multipartBody) reader() *multipartReader {
	return &multipartReader{mb: mb}
}

// multipartReader streams a multipartBody: text up to the next cut, then
// that image, opened when reached and closed when done.
type multipartReader struct {
	mb   *multipartBody
	pos  int           // bytes of mb.text sent
	next int           // the next image to send
	cur  io.ReadCloser // the image being sent, if any
	want int64         // bytes the current image must still deliver; -1 unknown
	err  error
}

// Read implements io.Reader.
func (r *multipartReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.cur != nil {
			n, err := r.readImage(p)
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		end := len(r.mb.text)
		if r.next < len(r.mb.cuts) {
			end = r.mb.cuts[r.next]
		}
		if r.pos < end {
			n := copy(p, r.mb.text[r.pos:end])
			r.pos += n
			return n, nil
		}
		if r.next == len(r.mb.cuts) {
			return 0, io.EOF
		}
		if r.err = r.open(r.mb.images[r.next]); r.err != nil {
			return 0, r.err
		}
		r.next++
	}
}

// open starts sending img.
func (r *multipartReader) open(img Image) error {
	if img.Open == nil {
		r.cur, r.want = io.NopCloser(bytes.NewReader(img.Data)), int64(len(img.Data))
		return nil
	}
	f, err := img.Open()
	if err != nil {
		return &PhotoError{Err: fmt.Errorf("opening image %s: %w", img.Name, err)}
	}
	r.cur, r.want = f, img.Size
	return nil
}

// readImage reads from the current image, checking it delivers its size.
func (r *multipartReader) readImage(p []byte) (int, error) {
	if r.want >= 0 && int64(len(p)) > r.want+1 {
		p = p[:r.want+1] // one byte more reveals a file that grew
	}
	n, err := r.cur.Read(p)
	if r.want >= 0 {
		if int64(n) > r.want {
			r.err = &PhotoError{Err: fmt.Errorf("%w: an image has more bytes than it had", ErrPhotoChanged)}
			r.closeCur()
			return 0, r.err
		}
		r.want -= int64(n)
	}
	switch {
	case err == io.EOF:
		if r.want > 0 {
			r.err = &PhotoError{Err: fmt.Errorf("%w: an image ended %d bytes short", ErrPhotoChanged, r.want)}
			r.closeCur()
			return 0, r.err
		}
		r.closeCur()
		return n, nil
	case err != nil:
		r.err = &PhotoError{Err: fmt.Errorf("reading an image: %w", err)}
		r.closeCur()
		return 0, r.err
	}
	return n, nil
}

func (r *multipartReader) closeCur() {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

// Close closes the image being read, if any.
func (r *multipartReader) Close() error {
	r.closeCur()
	return nil
}
