package main

import (
	"time"
)

// Process columns of the table: "server" is the process answering the
// load (the ceiling, the seed design or the gateway); "client" is this
// process, the load generator.
var procNames = []string{"server", "worker", "nats", "redis", "s3", "client"}

// meter measures CPU time and peak RSS of some processes over an interval.
type meter struct {
	pids      map[string]int
	start     map[string]time.Duration
	began     time.Time
	busyStart time.Duration // the whole machine's
}

// startMeter resets the processes' peak RSS and reads their CPU time. A pid
// of 0 is this process (CPU only).
func startMeter(pids map[string]int) (*meter, error) {
	m := &meter{pids: pids, start: map[string]time.Duration{}, began: time.Now()}
	var err error
	if m.busyStart, err = machineBusy(); err != nil {
		return nil, err
	}
	for name, pid := range pids {
		if pid != 0 {
			if err := resetPeakRSS(pid); err != nil {
				return nil, err
			}
		}
		t, err := cpuTime(pid)
		if err != nil {
			return nil, err
		}
		m.start[name] = t
	}
	return m, nil
}

// add measures one more process from the start of its life (a process
// started after the meter).
func (m *meter) add(name string, pid int) {
	m.pids[name] = pid
	m.start[name] = 0
}

// usage is what one process used over the interval.
type usage struct {
	cpu  time.Duration
	peak int64 // bytes; 0 for this process
}

// stop returns each process's usage and the CPU the rest of the machine
// used meanwhile, in cores (1 = one processor busy all the time): other
// engineers' work, and the benchmark's own idle servers.
func (m *meter) stop() (map[string]usage, float64, error) {
	out := map[string]usage{}
	busy, err := machineBusy()
	if err != nil {
		return nil, 0, err
	}
	wall := time.Since(m.began)
	rest := busy - m.busyStart
	for name, pid := range m.pids {
		t, err := cpuTime(pid)
		if err != nil {
			return nil, 0, err
		}
		u := usage{cpu: t - m.start[name]}
		if pid != 0 {
			if u.peak, err = peakRSS(pid); err != nil {
				return nil, 0, err
			}
		}
		out[name] = u
		rest -= u.cpu
	}
	return out, max(0, rest.Seconds()/wall.Seconds()), nil
}
