package codec

import "fmt"

// Names lists the codec names ByName accepts.
var Names = []string{"packet", "raw"}

// ByName returns the built-in codec called name, configured with maxFrame
// where the codec has a limit (0 picks the codec's default).
func ByName(name string, maxFrame int) (Codec, error) {
	switch name {
	case "packet":
		return Packet(maxFrame), nil
	case "raw":
		return Raw(), nil
	}
	return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownCodec, name, Names)
}
