package proxyproto

import "errors"

// Sentinel errors; Parse and ParsePrefixes wrap them with details (%w).
// Test with errors.Is.
var (
	// ErrMissing: the connection does not start with a PROXY header (v1
	// or v2 signature).
	ErrMissing = errors.New("herald/proxyproto: no PROXY protocol header")
	// ErrMalformed: a header starts with a signature but breaks the spec.
	ErrMalformed = errors.New("herald/proxyproto: malformed PROXY protocol header")
	// ErrTooLong: a v1 line without CRLF in 107 bytes, or a v2 header
	// longer than MaxV2Len.
	ErrTooLong = errors.New("herald/proxyproto: PROXY protocol header too long")
	// ErrBadPrefix: ParsePrefixes was given something that is not a CIDR
	// prefix or an IP address.
	ErrBadPrefix = errors.New("herald/proxyproto: invalid trusted proxy prefix")
)
