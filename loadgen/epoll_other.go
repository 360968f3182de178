//go:build !linux

package loadgen

const epollSupported = false

func (r *echoRun) startPingPongEpoll() error {
	return configErr("Engine %q needs Linux", EngineEpoll)
}
