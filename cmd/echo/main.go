// Command echo is herald's echo server: it sends back what it receives,
// byte for byte with -codec raw (the default) or frame for frame with
// -codec packet. It listens on 127.0.0.1:7000 by default; -h lists every
// flag.
package main

import "github.com/herald-mmo/herald/internal/demo"

func main() {
	demo.Main("echo", "127.0.0.1:7000", "raw", demo.Echo{})
}
