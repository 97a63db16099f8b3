package main

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Colours of the chart's bars, by row kind.
var kindColour = map[string]string{
	"ceiling": "#9e9e9e",
	"sluice":  "#1f77b4",
	"open":    "#17becf",
	"seed":    "#d62728",
	"drain":   "#2ca02c",
	"sync":    "#9467bd",
}

// svg draws two bar charts side by side, one bar per row: req/s (a black
// tick marks the ceiling's at the same events per request, and the label
// says the ratio) and p99 latency, on a log scale from 100µs so that
// milliseconds and seconds both show.
func (rep report) svg() string {
	const (
		labelW, rateW, p99W = 300, 360, 200
		gap, rowH, top      = 170, 26, 64 // gap holds the req/s figures
		barH                = 16
	)
	width := labelW + rateW + gap + p99W + 90
	height := top + rowH*len(rep.rows) + 40
	var maxRate float64
	var maxP99 time.Duration
	for _, r := range rep.rows {
		maxRate = max(maxRate, r.reqs)
		if r.latency {
			maxP99 = max(maxP99, r.p99)
		}
	}
	maxRate, maxP99 = max(maxRate, 1), max(maxP99, time.Microsecond)

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">Sluice end-to-end, %s</text>`+"\n", html.EscapeString(rep.started.Format("2006-01-02")))
	x1, x2 := labelW, labelW+rateW+gap
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">requests/s answered (| = the ceiling at the same events/req)</text>`+"\n", x1, top-12)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">p99 latency (log scale)</text>`+"\n", x2, top-12)
	for i, r := range rep.rows {
		y := top + i*rowH
		colour := kindColour[r.kind]
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-10, y+barH-3, html.EscapeString(r.label))
		w := int(float64(rateW) * r.reqs / maxRate)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x1, y, max(w, 1), barH, colour)
		text := thousands(r.reqs)
		if r.kind == "drain" {
			text += " msgs/s"
		}
		if x, ok := rep.ratio(r); ok && r.kind != "ceiling" {
			text += " (" + ratioText(x) + "×)"
		}
		end := x1 + max(w, 1)
		if c, ok := rep.ceilingOf(r); ok && r.kind != "ceiling" {
			cx := x1 + int(float64(rateW)*c.reqs/maxRate)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black" stroke-width="2"/>`+"\n", cx, y-3, cx, y+barH+3)
			end = max(end, cx)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", end+6, y+barH-3, text)
		if !r.latency {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#777">n/a</text>`+"\n", x2, y+barH-3)
			continue
		}
		pw := int(float64(p99W) * logScale(r.p99, maxP99))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x2, y, max(pw, 1), barH, colour)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x2+max(pw, 1)+6, y+barH-3, millis(r.p99))
	}
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">%s</text>`+"\n", height-14, html.EscapeString(machine()))
	b.WriteString("</svg>\n")
	return b.String()
}

// logScale places d between 100µs (0) and top (1) on a log scale.
func logScale(d, top time.Duration) float64 {
	const floor = 100 * time.Microsecond
	if d <= floor || top <= floor {
		return 0
	}
	return math.Log(float64(d)/float64(floor)) / math.Log(float64(top)/float64(floor))
}
