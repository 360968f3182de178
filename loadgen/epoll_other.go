//go:build !linux

package loadgen

const epollSupported = false

func (r *echoRun) startPingPongEpoll() error {
	return configErr("Engine %q needs Linux", EngineEpoll)
}

func (r *scaleRun) startEpoll() error { return configErr("Engine %q needs Linux", EngineEpoll) }

func writeFD(int, []byte) (int, error) { return 0, configErr("Engine %q needs Linux", EngineEpoll) }

func shutdownFD(int) {}
