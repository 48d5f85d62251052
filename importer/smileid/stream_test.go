package smileid

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

const (
	streamPartner = "partner"
	streamKey     = "apiKey"
)

// signedOK answers a signed 0840 for the user in the body it read.
func signedOK(w http.ResponseWriter, userID string) {
	ts := signature.Timestamp(time.Now())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"ResultCode": "0840", "ResultText": "Enroll User", "SmileJobID": "1",
		"timestamp": ts, "signature": signature.Sign(streamKey, streamPartner, ts),
		"PartnerParams": map[string]any{"user_id": userID},
	})
}

func streamClient(t testing.TB, base string, rt http.RoundTripper) *Client {
	t.Helper()
	c, err := NewClient(Config{PartnerID: streamPartner, APIKey: streamKey, BaseURL: base}, ClientOptions{
		Workers: 64, Transport: rt,
		Now: func() time.Time { return time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// opener opens data as a file would be, counting the opens.
func opener(data []byte, opens *atomic.Int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		opens.Add(1)
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}

func TestStreamBodyIdentical(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var lengths []int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		bodies, lengths = append(bodies, b), append(lengths, r.ContentLength)
		mu.Unlock()
		var req map[string]string
		if err := json.Unmarshal(b, &req); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		signedOK(w, req["user_id"])
	}))
	defer hs.Close()
	c := streamClient(t, hs.URL, nil)
	rnd := rand.New(rand.NewPCG(3, 4))
	chunk := len(photoBody{}.raw)
	for _, n := range []int{0, 1, 2, 3, 4, chunk - 1, chunk, chunk + 1, 2*chunk + 2, 100_000, 1 << 20} {
		photo := make([]byte, n)
		for i := range photo {
			photo[i] = byte(rnd.Uint32())
		}
		bodies, lengths = nil, nil
		u := User{UserID: "user-" + strconv.Itoa(n), CreatedAt: "2021-06-01", Photo: photo}
		if _, err := c.Submit(context.Background(), u); err != nil {
			t.Fatalf("buffered, %d bytes: %v", n, err)
		}
		var opens atomic.Int64
		u.Photo, u.Open, u.Size = nil, opener(photo, &opens), int64(n)
		if _, err := c.Submit(context.Background(), u); err != nil {
			t.Fatalf("streamed, %d bytes: %v", n, err)
		}
		if len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) {
			t.Fatalf("%d bytes: the streamed body differs from the buffered one", n)
		}
		if lengths[1] != int64(len(bodies[1])) {
			t.Errorf("%d bytes: Content-Length %d for a body of %d", n, lengths[1], len(bodies[1]))
		}
		var req map[string]string
		json.Unmarshal(bodies[1], &req)
		if got, _ := base64.StdEncoding.DecodeString(req["photo"]); !bytes.Equal(got, photo) {
			t.Errorf("%d bytes: the photo decoded differs", n)
		}
		if opens.Load() != 1 {
			t.Errorf("%d opens", opens.Load())
		}
	}
}

func TestStreamPhotoChangedSize(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		signedOK(w, "u")
	}))
	defer hs.Close()
	c := streamClient(t, hs.URL, nil)
	photo := bytes.Repeat([]byte{0xFF, 0xD8, 0xFF, 1}, 10_000)
	for _, size := range []int64{int64(len(photo)) + 10, int64(len(photo)) - 10, 0} {
		var opens atomic.Int64
		_, err := c.Submit(context.Background(), User{UserID: "u", CreatedAt: "2021-06-01", Open: opener(photo, &opens), Size: size})
		// The body ended short of its length: not a request (no outcome).
		var pe *PhotoError
		if !errors.Is(err, ErrPhotoChanged) || !errors.As(err, &pe) {
			t.Errorf("size %d for a file of %d: err = %v", size, len(photo), err)
		}
	}
	// A file that cannot be opened sends nothing.
	_, err := c.Submit(context.Background(), User{UserID: "u", Open: func() (io.ReadCloser, error) { return nil, os.ErrNotExist }})
	var pe *PhotoError
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "opening the photo") || !errors.As(err, &pe) {
		t.Errorf("open failure: %v", err)
	}
}

// replayTransport reads each request's body, then sends it again from
// GetBody, as the HTTP/2 transport does after a refused stream, and answers
// with a signed success if both copies agree.
type replayTransport struct{ t *testing.T }

func (rt replayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	first, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	if req.GetBody == nil {
		rt.t.Fatal("no GetBody")
	}
	again, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	second, err := io.ReadAll(again)
	again.Close()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, second) || int64(len(second)) != req.ContentLength {
		rt.t.Errorf("GetBody gave another body (%d and %d bytes, Content-Length %d)", len(first), len(second), req.ContentLength)
	}
	rec := httptest.NewRecorder()
	signedOK(rec, "u")
	return rec.Result(), nil
}

func TestStreamRetryReopens(t *testing.T) {
	c := streamClient(t, "http://127.0.0.1:1", replayTransport{t})
	var opens atomic.Int64
	photo := bytes.Repeat([]byte{7}, 50_000)
	if _, err := c.Submit(context.Background(), User{UserID: "u", CreatedAt: "2021-06-01", Open: opener(photo, &opens), Size: int64(len(photo))}); err != nil {
		t.Fatal(err)
	}
	if opens.Load() != 2 {
		t.Errorf("%d opens for a body sent twice", opens.Load())
	}
}

func TestStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 64 × 5 MB")
	}
	const workers, size = 64, 5 << 20
	path := filepath.Join(t.TempDir(), "photo.jpg")
	photo := bytes.Repeat([]byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4}, size/8)
	if err := os.WriteFile(path, photo, 0o600); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n != r.ContentLength {
			t.Errorf("read %d of %d", n, r.ContentLength)
		}
		signedOK(w, "u")
	}))
	defer hs.Close()
	c := streamClient(t, hs.URL, nil)
	// 320 MB through one loopback under -race on a busy machine: the test
	// is about memory, so no request may time out on the way.
	c.timeout = 10 * time.Minute
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(context.Background(), User{UserID: "u", CreatedAt: "2021-06-01", Open: open, Size: size}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / workers
	t.Logf("%d concurrent 5 MB submits: %d KB allocated per request (client and test server together)", workers, per>>10)
	if per > 1<<20 {
		t.Errorf("%d bytes allocated per request, want under 1 MB", per)
	}
}
