package sandbox

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

func ledgerImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 99, 255})
		}
	}
	return img
}

// TestStatePhotos checks the photo ledger of GET /sandbox/state: format,
// size and dimensions of the photo each enrolled user received, and nothing
// for refused requests or second enrollments.
func TestStatePhotos(t *testing.T) {
	var jb, pb bytes.Buffer
	if err := jpeg.Encode(&jb, ledgerImage(40, 30), nil); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&pb, ledgerImage(17, 23)); err != nil {
		t.Fatal(err)
	}
	s, hs := start(t, Options{})
	send := func(user string, photo []byte, want int) {
		t.Helper()
		f := fields(user)
		f["photo"] = b64(photo)
		if r := mustSend(t, hs.URL, f); r.status != want {
			t.Fatalf("%s: HTTP %d %s, want %d", user, r.status, r.raw, want)
		}
	}
	send("j", jb.Bytes(), 200)
	send("p", pb.Bytes(), 200)
	send("stub", jpegPhoto, 200) // JPEG magic, unreadable header
	send("gif", gifPhoto, 400)
	send("j", pb.Bytes(), 400) // already enrolled: the first photo stays

	st := getState(t, hs.URL)
	want := map[string]PhotoInfo{
		"j": {Format: "jpeg", Bytes: int64(jb.Len()), Width: 40, Height: 30},
		"p": {Format: "png", Bytes: int64(pb.Len()), Width: 17, Height: 23},
	}
	if len(st.Photos) != 3 {
		t.Errorf("ledger has %d photos, want 3: %+v", len(st.Photos), st.Photos)
	}
	for id, w := range want {
		if got := st.Photos[id]; got != w {
			t.Errorf("photo of %s: %+v, want %+v", id, got, w)
		}
	}
	stub := st.Photos["stub"]
	if stub.Format != "jpeg" || stub.Bytes != int64(len(jpegPhoto)) || stub.Width != 0 || stub.ConfigError == "" {
		t.Errorf("photo of stub: %+v, want a jpeg of %d bytes with a config error", stub, len(jpegPhoto))
	}
	if _, ok := st.Photos["gif"]; ok {
		t.Error("a refused photo is in the ledger")
	}
	if got := s.Photos(); len(got) != 3 || got["p"] != want["p"] {
		t.Errorf("Photos() = %+v", got)
	}
}
