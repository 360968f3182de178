package codec

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Names lists the plain codec names ByName accepts. ByName also accepts the
// parameterised forms "fixed:N" and "delimiter:BYTES".
var Names = []string{"packet", "raw", "line", "delimiter", "len16", "len16le", "len32", "len32le"}

// ByName returns the built-in codec called name, configured with maxFrame
// where the codec has a limit (0 picks the codec's default):
//
//	packet           Packet(maxFrame)
//	raw              Raw()
//	line             Line(maxFrame)
//	delimiter        Delimiter("\x00", maxFrame): NUL-terminated frames
//	delimiter:BYTES  Delimiter(BYTES, maxFrame); BYTES takes Go string escapes,
//	                 so -codec 'delimiter:\r\n' ends frames with CR LF
//	fixed:N          Fixed(N); maxFrame is not used
//	len16            LengthField: [length u16 BE][body], length counts the body
//	len16le          the same, little-endian
//	len32            LengthField: [length u32 BE][body] (DefaultLengthFieldConfig)
//	len32le          the same, little-endian
//
// The Name of every codec ByName returns is a name ByName accepts. An
// unknown name is an error wrapping ErrUnknownCodec, a bad parameter one
// wrapping ErrBadConfig.
func ByName(name string, maxFrame int) (Codec, error) {
	switch name {
	case "packet":
		return Packet(maxFrame), nil
	case "raw":
		return Raw(), nil
	case "line":
		return Line(maxFrame), nil
	case "delimiter":
		return Delimiter("\x00", maxFrame)
	case "len16", "len16le", "len32", "len32le":
		cfg := DefaultLengthFieldConfig()
		cfg.Name = name
		cfg.MaxFrameLength = frameLimit(maxFrame)
		if strings.HasPrefix(name, "len16") {
			cfg.LengthFieldLength, cfg.InitialBytesToStrip = 2, 2
		}
		if strings.HasSuffix(name, "le") {
			cfg.ByteOrder = binary.LittleEndian
		}
		return LengthField(cfg)
	}
	if s, ok := strings.CutPrefix(name, "fixed:"); ok {
		size, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%w: codec %q: size %q is not a number", ErrBadConfig, name, s)
		}
		return Fixed(size)
	}
	if s, ok := strings.CutPrefix(name, "delimiter:"); ok {
		delim, err := strconv.Unquote(`"` + s + `"`)
		if err != nil {
			return nil, fmt.Errorf("%w: codec %q: delimiter %q is not a Go string body", ErrBadConfig, name, s)
		}
		return Delimiter(delim, maxFrame)
	}
	return nil, fmt.Errorf("%w %q (known: %s, fixed:N, delimiter:BYTES)", ErrUnknownCodec, name, strings.Join(Names, ", "))
}
