// Package config binds command-line flags to environment variables, so every
// setting can come from either (flags win), and renders the effective
// configuration for the start-up log with secrets masked.
package config

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// Binder registers flags on a FlagSet, each with an environment fallback.
type Binder struct {
	fs      *flag.FlagSet
	secrets map[string]bool
	envErrs []error
}

// NewBinder returns a Binder over fs.
func NewBinder(fs *flag.FlagSet) *Binder {
	return &Binder{fs: fs, secrets: map[string]bool{}}
}

func usage(u, env string) string {
	if env == "" {
		return u
	}
	return fmt.Sprintf("%s (env %s)", u, env)
}

// String binds a string flag; the environment variable env, when set,
// replaces the default.
func (b *Binder) String(dst *string, name, env, def, u string) {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		def = v
	}
	b.fs.StringVar(dst, name, def, usage(u, env))
}

// Secret binds a string flag whose value must never be logged.
func (b *Binder) Secret(dst *string, name, env, def, u string) {
	b.String(dst, name, env, def, u)
	b.secrets[name] = true
}

// Int64 binds an int64 flag.
func (b *Binder) Int64(dst *int64, name, env string, def int64, u string) {
	b.fs.Int64Var(dst, name, b.intEnv(env, def, 64), usage(u, env))
}

// Int binds an int flag.
func (b *Binder) Int(dst *int, name, env string, def int, u string) {
	b.fs.IntVar(dst, name, int(b.intEnv(env, int64(def), strconv.IntSize)), usage(u, env))
}

// intEnv is def, or the integer in the environment variable env.
func (b *Binder) intEnv(env string, def int64, bits int) int64 {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			b.envErrs = append(b.envErrs, fmt.Errorf("environment variable %s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	return def
}

// Duration binds a time.Duration flag.
func (b *Binder) Duration(dst *time.Duration, name, env string, def time.Duration, u string) {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.envErrs = append(b.envErrs, fmt.Errorf("environment variable %s=%q is not a duration (e.g. 30s)", env, v))
		} else {
			def = d
		}
	}
	b.fs.DurationVar(dst, name, def, usage(u, env))
}

// Bool binds a bool flag.
func (b *Binder) Bool(dst *bool, name, env string, def bool, u string) {
	if v, ok := os.LookupEnv(env); ok && env != "" {
		x, err := strconv.ParseBool(v)
		if err != nil {
			b.envErrs = append(b.envErrs, fmt.Errorf("environment variable %s=%q is not a boolean", env, v))
		} else {
			def = x
		}
	}
	b.fs.BoolVar(dst, name, def, usage(u, env))
}

// Parse parses args and reports the first malformed environment variable.
func (b *Binder) Parse(args []string) error {
	if err := b.fs.Parse(args); err != nil {
		return err
	}
	if len(b.envErrs) > 0 {
		return b.envErrs[0]
	}
	return nil
}

// Masker masks a secret value for logging; database URLs keep their host.
type Masker func(name, value string) string

// Effective returns the effective configuration as slog attributes, one per
// flag in name order, with secrets replaced by mask(name, value).
func (b *Binder) Effective(mask Masker) slog.Attr {
	var attrs []any
	b.fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if b.secrets[f.Name] && v != "" {
			v = mask(f.Name, v)
		}
		attrs = append(attrs, slog.String(f.Name, v))
	})
	return slog.Group("config", attrs...)
}
