package demo

import (
	"flag"

	"github.com/herald-mmo/herald/backplane"
	"github.com/herald-mmo/herald/handler"
	"github.com/rs/zerolog"
)

// natsFlags are the flags that make a demo server a node of rooms that span
// servers over NATS.
type natsFlags struct {
	url, node *string
}

func addNATSFlags(fs *flag.FlagSet, name string) natsFlags {
	return natsFlags{
		url:  fs.String("nats", "", "share broadcasts with the other nodes on this NATS server, e.g. nats://127.0.0.1:4222 (empty: one node, nothing about NATS runs)"),
		node: fs.String("node", name, "this node's name in NATS and in the logs (with -nats)"),
	}
}

// option returns the server option for the flags: a NATS backplane, or
// none without -nats.
func (f natsFlags) option(log zerolog.Logger) handler.Option {
	if *f.url == "" {
		return handler.WithBackplane(nil)
	}
	return handler.WithBackplane(func(d backplane.Deliver) (backplane.Backplane, error) {
		cfg := backplane.DefaultConfig()
		cfg.URL, cfg.Name, cfg.Deliver, cfg.Logger = *f.url, *f.node, d, log
		return backplane.NewNATS(cfg)
	})
}
