package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Set is a group of settings of one binary.
type Set struct {
	name   string
	getenv func(string) string
	fs     *flag.FlagSet
	vars   []*variable
}

type variable struct {
	env, flag, def, usage string
	set                   func(string) error
	isBool                bool
}

func (v *variable) String() string     { return "" }
func (v *variable) Set(s string) error { return v.set(s) }
func (v *variable) IsBoolFlag() bool   { return v.isBool }

// New returns an empty Set for the named binary reading the environment
// through getenv.
func New(name string, getenv func(string) string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &Set{name: name, getenv: getenv, fs: fs}
}

// flagName turns SLUICE_HTTP_ADDR into http-addr.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "SLUICE_")), "_", "-")
}

// Func declares a setting parsed by parse, which is called with the default,
// then the environment value, then the flag value, each when present.
func (s *Set) Func(env, def, usage string, parse func(string) error) {
	v := &variable{env: env, flag: flagName(env), def: def, usage: usage, set: parse}
	s.vars = append(s.vars, v)
	s.fs.Var(v, v.flag, usage)
}

// String declares a string setting.
func (s *Set) String(p *string, env, def, usage string) {
	s.Func(env, def, usage, func(v string) error { *p = v; return nil })
}

// Enum declares a string setting limited to the allowed values.
func (s *Set) Enum(p *string, env, def string, allowed []string, usage string) {
	s.Func(env, def, usage+" ("+strings.Join(allowed, ", ")+")", func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
		}
		*p = v
		return nil
	})
}

// Int declares an integer setting that must be at least min.
func (s *Set) Int(p *int, env string, def, min int, usage string) {
	s.Func(env, strconv.Itoa(def), usage, func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if n < min {
			return fmt.Errorf("must be at least %d", min)
		}
		*p = n
		return nil
	})
}

// Bytes declares a size setting such as 512, 64KiB, 8MiB or 1GB that must be
// at least min bytes.
func (s *Set) Bytes(p *int64, env, def string, min int64, usage string) {
	s.Func(env, def, usage, func(v string) error {
		n, err := ParseBytes(v)
		if err != nil {
			return err
		}
		if n < min {
			return fmt.Errorf("must be at least %d bytes", min)
		}
		*p = n
		return nil
	})
}

// Duration declares a duration setting (time.ParseDuration) that must be at
// least min.
func (s *Set) Duration(p *time.Duration, env string, def, min time.Duration, usage string) {
	s.Func(env, def.String(), usage, func(v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 500ms, 5s, 2m)")
		}
		if d < min {
			return fmt.Errorf("must be at least %s", min)
		}
		*p = d
		return nil
	})
}

// Bool declares a boolean setting (true/false, 1/0).
func (s *Set) Bool(p *bool, env string, def bool, usage string) {
	s.Func(env, strconv.FormatBool(def), usage, func(v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*p = b
		return nil
	})
	s.vars[len(s.vars)-1].isBool = true
}

// ErrHelp is returned by Parse after it printed the usage for -h.
var ErrHelp = flag.ErrHelp

// Parse applies defaults, then the environment, then args. For -h it prints
// every setting to out and returns ErrHelp.
func (s *Set) Parse(args []string, out io.Writer) error {
	for _, v := range s.vars {
		if err := v.set(v.def); err != nil {
			return fmt.Errorf("default of %s=%q: %w", v.env, v.def, err)
		}
		if val, ok := s.lookup(v.env); ok {
			if err := v.set(val); err != nil {
				return fmt.Errorf("%s=%q: %w", v.env, val, err)
			}
		}
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.Usage(out)
			return ErrHelp
		}
		return fmt.Errorf("%w (run %s -h for every setting)", err, s.name)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (run %s -h for every setting)", s.fs.Arg(0), s.name)
	}
	return nil
}

func (s *Set) lookup(env string) (string, bool) {
	v := s.getenv(env)
	return v, v != ""
}

// Usage prints every setting with its flag, variable and default.
func (s *Set) Usage(out io.Writer) {
	fmt.Fprintf(out, "Usage of %s: every setting is an environment variable, or the flag beside it.\n\n", s.name)
	for _, v := range s.vars {
		def := v.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(out, "  %-28s -%s (default %s)\n      %s\n", v.env, v.flag, def, v.usage)
	}
}

// ParseBytes reads a size: a plain number of bytes or a number followed by
// B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[strings.ToLower(unit)]
	if n, err := strconv.ParseInt(num, 10, 64); err == nil && mult == 1 && n >= 0 {
		return n, nil // a plain byte count, exact up to math.MaxInt64
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || f < 0 {
		return 0, fmt.Errorf("not a size (e.g. 1048576, 64KiB, 8MiB, 1GB)")
	}
	if f*mult >= math.MaxInt64 { // float64(math.MaxInt64) is 2^63
		return 0, fmt.Errorf("too large (at most %d bytes)", int64(math.MaxInt64))
	}
	return int64(f * mult), nil
}
