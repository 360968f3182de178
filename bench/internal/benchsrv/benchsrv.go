// Package benchsrv is what the baseline servers under bench/ share: their
// common flags and a gnet runner that stops on SIGINT/SIGTERM.
package benchsrv

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// Flags are the flags every baseline takes, matching herald's demos where
// they overlap.
type Flags struct {
	Addr      string
	LogLevel  string
	Multicore bool
}

// Register defines -addr (default defAddr), -log-level and -multicore on
// the default flag set.
func Register(defAddr string) *Flags {
	f := &Flags{}
	flag.StringVar(&f.Addr, "addr", defAddr, "listen address (host:port)")
	flag.StringVar(&f.LogLevel, "log-level", "warn", "gnet log level: debug, info, warn, error")
	flag.BoolVar(&f.Multicore, "multicore", true, "gnet: one event loop per CPU (false: a single loop)")
	return f
}

// Fatal prints err prefixed with the program's name and exits 1.
func Fatal(err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[0], err)
	os.Exit(1)
}

// Booter is embedded by gnet baselines: it records the engine at boot so
// RunGnet can stop it.
type Booter struct {
	gnet.BuiltinEventEngine
	booted chan gnet.Engine
}

// OnBoot implements gnet.EventHandler.
func (b *Booter) OnBoot(eng gnet.Engine) gnet.Action {
	b.booted <- eng
	return gnet.None
}

// RunGnet serves h (which embeds a *Booter made by NewBooter) on f.Addr
// until SIGINT or SIGTERM.
func RunGnet(h gnet.EventHandler, b *Booter, f *Flags) error {
	var lvl logging.Level
	if err := lvl.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		eng := <-b.booted
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	}()
	return gnet.Run(h, "tcp://"+f.Addr,
		gnet.WithMulticore(f.Multicore),
		gnet.WithReusePort(false),
		gnet.WithLogger(logger{lvl}),
	)
}

// logger is a gnet logging.Logger that drops messages below its level.
type logger struct{ min logging.Level }

func (l logger) logf(lvl logging.Level, format string, args ...any) {
	if lvl >= l.min {
		log.Printf(lvl.CapitalString()+" "+format, args...)
	}
}

func (l logger) Debugf(format string, args ...any) { l.logf(logging.DebugLevel, format, args...) }
func (l logger) Infof(format string, args ...any)  { l.logf(logging.InfoLevel, format, args...) }
func (l logger) Warnf(format string, args ...any)  { l.logf(logging.WarnLevel, format, args...) }
func (l logger) Errorf(format string, args ...any) { l.logf(logging.ErrorLevel, format, args...) }
func (l logger) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }

// NewBooter returns a Booter for RunGnet.
func NewBooter() *Booter { return &Booter{booted: make(chan gnet.Engine, 1)} }
