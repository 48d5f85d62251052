package sandbox

// SmartSelfie Compare (v2): POST /v2/smart-selfie-compare, multipart with
// header authentication, answered synchronously. The body is read as it
// arrives: images are hashed and sized, never held.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ComparePath is the path of the emulated SmartSelfie Compare endpoint.
const ComparePath = "/v2/smart-selfie-compare"

// CompareJob is one compare job in the emulator's ledger: a request that
// got as far as a result (0840, 0841 or 0941), answered or not.
type CompareJob struct {
	// UserID and JobID are the request's user_id and partner_params.job_id.
	UserID string `json:"user_id"`
	JobID  string `json:"job_id"`
	// Liveness is the number of liveness images received; Images counts
	// every image (selfie, comparison and liveness).
	Liveness int `json:"liveness"`
	Images   int `json:"images"`
	// Code is the result given.
	Code string `json:"code"`
}

// compareState is the compare ledger; its zero value is ready.
type compareState struct {
	mu   sync.Mutex
	jobs []CompareJob
	ids  map[string]bool // job_ids used
}

// CompareJobs returns a copy of the compare ledger, in arrival order.
func (s *Server) CompareJobs() []CompareJob {
	s.cmp.mu.Lock()
	defer s.cmp.mu.Unlock()
	return slices.Clone(s.cmp.jobs)
}

// compareForm is what the emulator read of a compare body.
type compareForm struct {
	userID, compType, partnerParams, allowNew string
	selfie, comparison                        imageSeen
	liveness                                  []imageSeen
	bad                                       string // the first image that is not JPEG/PNG or too large
}

// imageSeen describes one image part read.
type imageSeen struct {
	present bool
	sum     [32]byte
	info    PhotoInfo
}

// compareText are the documented texts of compare's results.
var compareText = map[string]string{
	"0840": "Face Match",
	"0841": "No Match - - No Face Match",
	"0941": "No Match - The compared images are identical.",
}

// serveCompare answers one compare request, with the latency, outages and
// fault dice of the backfill route.
func (s *Server) serveCompare(w http.ResponseWriter, r *http.Request) {
	s.serveCounted(w, r, s.decideCompare)
}

// compareErr is compare's error shape.
type compareErr struct {
	Code    string `json:"code"`
	Error   string `json:"error"`
	Success bool   `json:"success"`
}

// compareOK is compare's documented 200 answer.
type compareOK struct {
	Code          string            `json:"code"`
	CreatedAt     string            `json:"created_at"`
	JobType       string            `json:"job_type"`
	Message       string            `json:"message"`
	JobID         string            `json:"job_id"`
	UserID        string            `json:"user_id"`
	PartnerID     string            `json:"partner_id"`
	PartnerParams map[string]string `json:"partner_params"`
	UpdatedAt     string            `json:"updated_at"`
	Status        string            `json:"status"`
}

// decideCompare runs compare's checks in order and, if it gets that far,
// gives a result and records the job.
func (s *Server) decideCompare(w http.ResponseWriter, r *http.Request) (answer, outcome) {
	reject := func(status int, code, text string) (answer, outcome) {
		return answer{status: status, body: compareErr{Code: code, Error: text}}, outRejected
	}
	unauthorized := answer{status: http.StatusUnauthorized, body: compareErr{Code: "2205", Error: "Error - You are not authorized to do that"}}
	f, err := s.readCompare(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reject(http.StatusRequestEntityTooLarge, "2413", "request body too large")
		}
		return reject(http.StatusBadRequest, "2413", "could not read the multipart form: "+err.Error())
	}
	h := r.Header
	if !s.authorised(h.Get("SmileID-Partner-ID"), h.Get("SmileID-Timestamp"), h.Get("SmileID-Request-Signature")) {
		return unauthorized, outUnauthorized
	}
	var pp map[string]string
	for _, c := range []struct {
		missing bool
		text    string
	}{
		{f.userID == "", "user_id is required."},
		{!f.selfie.present, "selfie_image is required."},
		{!f.comparison.present, "comparison_image is required."},
		{f.compType == "", "comparison_image_type is required."},
		{f.compType != "ID_PHOTO" && f.compType != "PORTRAIT" && f.compType != "DOCUMENT",
			fmt.Sprintf("comparison_image_type %q must be one of ID_PHOTO, PORTRAIT, DOCUMENT.", f.compType)},
		{len(f.liveness) < 4, fmt.Sprintf("liveness_images: %d given, at least 4 are required.", len(f.liveness))},
		{len(f.liveness) > 8, fmt.Sprintf("liveness_images: %d given, at most 8 are allowed.", len(f.liveness))},
		{f.bad != "", f.bad},
		{f.partnerParams == "", "partner_params is required."},
		{f.partnerParams != "" && json.Unmarshal([]byte(f.partnerParams), &pp) != nil, "partner_params must be a JSON object of strings."},
		{pp != nil && pp["job_id"] == "", "partner_params.job_id is required."},
		{pp != nil && pp["user_id"] != "" && pp["user_id"] != f.userID, "partner_params.user_id differs from user_id."},
	} {
		if c.missing {
			return reject(http.StatusBadRequest, "2413", c.text)
		}
	}
	if wait, ok := s.admit(); !ok {
		return answer{status: http.StatusTooManyRequests, body: errBody{Error: "Too Many Requests"},
			retry: retryAfterHeader(wait)}, outQuota
	}
	if s.throttleFirst(f.userID) {
		return answer{status: http.StatusTooManyRequests, body: errBody{Error: "Too many requests"}}, outThrottled
	}
	switch s.opts.Refuse {
	case "2214":
		return answer{status: http.StatusForbidden, body: compareErr{Code: "2214", Error: "Error - Product not activated for this account"}}, outUnauthorized
	case "2220":
		return answer{status: http.StatusForbidden, body: compareErr{Code: "2220", Error: "Error - Production is not enabled for this account"}}, outUnauthorized
	case "2205":
		return unauthorized, outUnauthorized
	}
	dropAfter := false
	switch s.roll() {
	case outThrottled:
		return answer{status: http.StatusTooManyRequests, body: errBody{Error: "Too many requests"}}, outThrottled
	case outFailed:
		// Compare's page answers a system error with 2210.
		return answer{status: http.StatusInternalServerError, body: compareErr{Code: "2210", Error: "System Error"}}, outFailed
	case outDroppedBefore:
		return answer{drop: true}, outDroppedBefore
	case outDroppedAfter:
		dropAfter = true
	}

	jobID := pp["job_id"]
	code := "0840"
	switch {
	case f.selfie.sum == f.comparison.sum:
		code = "0941"
	case s.compareRejects(f.userID):
		code = "0841"
	}
	s.cmp.mu.Lock()
	if s.cmp.ids[jobID] {
		s.cmp.mu.Unlock()
		return reject(http.StatusBadRequest, "2215", "Job already exists. Did you mean to set the retry flag to true?")
	}
	out := outRejected
	if code == "0840" {
		s.mu.Lock()
		already := s.enrolled[f.userID] > 0
		if already && f.allowNew != "true" && f.allowNew != "True" {
			s.mu.Unlock()
			s.cmp.mu.Unlock()
			return answer{status: http.StatusBadRequest, body: compareErr{Code: "2209",
				Error: "Wrong job type. This user is already enrolled."}}, outAlready
		}
		s.enrolled[f.userID] = 1
		s.photos[f.userID] = f.selfie.info
		s.mu.Unlock()
		out = outEnrolled
	}
	if s.cmp.ids == nil {
		s.cmp.ids = make(map[string]bool)
	}
	s.cmp.ids[jobID] = true
	s.cmp.jobs = append(s.cmp.jobs, CompareJob{UserID: f.userID, JobID: jobID, Liveness: len(f.liveness),
		Images: len(f.liveness) + 2, Code: code})
	s.cmp.mu.Unlock()
	if dropAfter {
		if out == outEnrolled {
			return answer{drop: true}, outDroppedAfter
		}
		return answer{drop: true}, outRejected
	}
	now := s.now().UTC().Format(time.RFC3339)
	status := "approved"
	if code != "0840" {
		status = "rejected"
	}
	return answer{status: http.StatusOK, body: compareOK{Code: code, CreatedAt: now, UpdatedAt: now,
		JobType: "smart_selfie_compare", Message: compareText[code], JobID: strconv.FormatUint(s.jobBase+s.jobSeq.Add(1), 10),
		UserID: f.userID, PartnerID: s.opts.PartnerID, PartnerParams: pp, Status: status}}, out
}

// compareRejects reports whether user's faces are declared not to match:
// listed in CompareRejectUsers, or drawn by CompareRejectRate from a hash of
// the user_id (so the same users are rejected whatever the arrival order).
func (s *Server) compareRejects(user string) bool {
	if slices.Contains(s.opts.CompareRejectUsers, user) {
		return true
	}
	rate := s.opts.CompareRejectRate
	if rate <= 0 {
		return false
	}
	h := fnv.New64a()
	io.WriteString(h, user)
	return float64(h.Sum64()>>11)/float64(1<<53) < rate
}

// readCompare reads the multipart body part by part, hashing and sizing the
// images as they stream past.
func (s *Server) readCompare(w http.ResponseWriter, r *http.Request) (*compareForm, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, errors.New("Content-Type must be multipart/form-data with a boundary")
	}
	// Ten images at the photo limit, and the text fields.
	body := http.MaxBytesReader(w, r.Body, 10*s.maxPhoto+1<<20)
	mr := multipart.NewReader(body, params["boundary"])
	f := &compareForm{}
	buf := make([]byte, 32<<10)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return nil, err
		}
		name := p.FormName()
		if p.FileName() == "" && name != "selfie_image" && name != "comparison_image" && name != "liveness_images" {
			v, err := io.ReadAll(io.LimitReader(p, 64<<10))
			if err != nil {
				return nil, err
			}
			switch name {
			case "user_id":
				f.userID = string(v)
			case "comparison_image_type":
				f.compType = string(v)
			case "partner_params":
				f.partnerParams = string(v)
			case "allow_new_enroll":
				f.allowNew = string(v)
			}
			continue
		}
		img, err := s.readImage(p, name, buf)
		if err != nil {
			return nil, err
		}
		if img.info.Bytes > s.maxPhoto && f.bad == "" {
			f.bad = fmt.Sprintf("%s is larger than the limit of %d bytes.", name, s.maxPhoto)
		}
		if img.info.Format == "" && f.bad == "" {
			f.bad = fmt.Sprintf("%s must be a JPEG or PNG image.", name)
		}
		switch name {
		case "selfie_image":
			f.selfie = img
		case "comparison_image":
			f.comparison = img
		case "liveness_images":
			f.liveness = append(f.liveness, img)
		}
	}
}

// readImage hashes and sizes one image part, and reads its format and
// dimensions from its first bytes.
func (s *Server) readImage(p io.Reader, name string, buf []byte) (imageSeen, error) {
	h := sha256.New()
	img := imageSeen{present: true}
	var head bytes.Buffer
	for {
		n, err := p.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if head.Len() < 64<<10 {
				head.Write(buf[:min(n, 64<<10-head.Len())])
			}
			img.info.Bytes += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return img, fmt.Errorf("reading %s: %w", name, err)
		}
	}
	h.Sum(img.sum[:0])
	// Format and dimensions from the first bytes (the size is checked on
	// the whole part by the caller).
	if text, info := s.describePhoto(head.Bytes()); text == "" {
		info.Bytes = img.info.Bytes
		img.info = info
	}
	return img, nil
}
