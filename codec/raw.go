package codec

// Raw returns the codec that does no framing: each read delivers every byte
// buffered so far as one frame, and Encode appends the body unchanged.
func Raw() Codec { return raw{} }

type raw struct{}

func (raw) Name() string { return "raw" }

func (raw) Decode(in []byte) (Frame, int, error) {
	if len(in) == 0 {
		return Frame{}, 0, nil
	}
	return Frame{Wire: in, Body: in}, len(in), nil
}

func (raw) Encode(dst []byte, f Frame) ([]byte, error) { return append(dst, f.Body...), nil }
