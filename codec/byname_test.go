package codec_test

import (
	"errors"
	"testing"

	"github.com/herald-mmo/herald/codec"
)

func TestByName(t *testing.T) {
	tests := []struct {
		name     string
		wantName string // the codec's Name
		wantErr  error
	}{
		{name: "packet", wantName: "packet"},
		{name: "raw", wantName: "raw"},
		{name: "line", wantName: "line"},
		{name: "delimiter", wantName: `delimiter:\x00`},
		{name: `delimiter:\r\n`, wantName: `delimiter:\r\n`},
		{name: "delimiter:|", wantName: "delimiter:|"},
		{name: "fixed:16", wantName: "fixed:16"},
		{name: "len16", wantName: "len16"},
		{name: "len16le", wantName: "len16le"},
		{name: "len32", wantName: "len32"},
		{name: "len32le", wantName: "len32le"},
		{name: "nope", wantErr: codec.ErrUnknownCodec},
		{name: "", wantErr: codec.ErrUnknownCodec},
		{name: "fixed", wantErr: codec.ErrUnknownCodec},
		{name: "fixed:0", wantErr: codec.ErrBadConfig},
		{name: "fixed:x", wantErr: codec.ErrBadConfig},
		{name: "delimiter:", wantErr: codec.ErrBadConfig},
		{name: `delimiter:"`, wantErr: codec.ErrBadConfig},
		{name: `delimiter:\q`, wantErr: codec.ErrBadConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := codec.ByName(tc.name, 0)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ByName(%q) error = %v, want %v", tc.name, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Name() != tc.wantName {
				t.Fatalf("Name() = %q, want %q", c.Name(), tc.wantName)
			}
			again, err := codec.ByName(c.Name(), 0)
			if err != nil || again.Name() != c.Name() {
				t.Fatalf("ByName(Name()) = %v, %v", again, err)
			}
		})
	}
}

func TestNamesAllWork(t *testing.T) {
	for _, name := range codec.Names {
		if _, err := codec.ByName(name, 0); err != nil {
			t.Errorf("ByName(%q): %v", name, err)
		}
	}
}

// TestByNameMaxFrame checks that ByName passes maxFrame on.
func TestByNameMaxFrame(t *testing.T) {
	for _, name := range []string{"packet", "line", "delimiter", "len16", "len32le"} {
		c := must(codec.ByName(name, 8))
		if _, err := c.Encode(nil, codec.Frame{Body: make([]byte, 9)}); !errors.Is(err, codec.ErrFrameTooLarge) {
			t.Errorf("%s with max 8: Encode(9 bytes) error = %v, want ErrFrameTooLarge", name, err)
		}
	}
}

func TestConstructorErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"Delimiter empty", second(codec.Delimiter("", 0))},
		{"Delimiter longer than 64 KiB", second(codec.Delimiter(string(make([]byte, 1<<16+1)), 0))},
		{"Fixed 0", second(codec.Fixed(0))},
		{"Fixed negative", second(codec.Fixed(-1))},
		{"Fixed above the limit", second(codec.Fixed(codec.MaxFrameLimit + 1))},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, codec.ErrBadConfig) {
			t.Errorf("%s: error = %v, want ErrBadConfig", tc.name, tc.err)
		}
	}
}

func second(_ codec.Codec, err error) error { return err }
