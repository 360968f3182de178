package sendbuffer

import "errors"

// ErrTooLarge is returned by Write when a buffer would grow beyond MaxSize.
var ErrTooLarge = errors.New("herald/sendbuffer: buffer would exceed MaxSize")
