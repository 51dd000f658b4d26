package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"gopkg.in/yaml.v3"
)

const (
	envPrefix         = "FLIGHT_POWER"
	envConfig         = envPrefix + "_CONFIG"
	systemConfigPath  = "/opt/flight/opt/power-client/etc/config.yaml"
	userConfigSubpath = ".config/flight-power/config.yaml"
)

// config says where the server is and how the client proves who it is.
type config struct {
	baseURL string
	token   string
	timeout time.Duration
	file    string            // the config file read, "" when none
	from    map[string]string // setting -> where its value came from, for messages
}

// loadConfig resolves the settings with ff: a flag given on the command
// line (already parsed into cmdline) wins over FLIGHT_POWER_<KEY>, which
// wins over config.yaml. The file is --config, else $FLIGHT_POWER_CONFIG,
// else the first of ~/.config/flight-power/config.yaml and
// /opt/flight/opt/power-client/etc/config.yaml that exists.
func loadConfig(cmdline *flag.FlagSet, getenv func(string) string) (*config, error) {
	c := &config{from: map[string]string{}}
	var explicit string
	fs := newFlagSet("config")
	fs.StringVar(&explicit, keyConfig, "", "")
	fs.StringVar(&c.baseURL, keyBaseURL, "", "")
	fs.StringVar(&c.token, keyToken, "", "")
	fs.Var(newDuration(&c.timeout, defaultTimeout), keyTimeout, "")

	var setErr error
	cmdline.Visit(func(f *flag.Flag) {
		if fs.Lookup(f.Name) == nil || setErr != nil {
			return
		}
		setErr = fs.Set(f.Name, f.Value.String())
		c.from[f.Name] = "--" + f.Name
	})
	if setErr != nil {
		return nil, usageErrorf("%v", setErr)
	}
	if err := ff.Parse(fs, nil, ff.WithEnvVarPrefix(envPrefix)); err != nil {
		return nil, usageErrorf("%v", err)
	}
	c.noteSources(fs, func(key string) string { return envPrefix + "_" + strings.ToUpper(key) })

	looked, err := c.findFile(explicit, getenv)
	if err != nil {
		return nil, err
	}
	if c.file != "" {
		err := ff.Parse(fs, nil, ff.WithConfigFile(c.file), ff.WithConfigFileParser(parseYAML))
		if err != nil {
			return nil, usageErrorf("config %s: %v", c.file, err)
		}
		c.noteSources(fs, func(string) string { return c.file })
	}
	return c, c.validate(looked)
}

// noteSources records where each setting that has a value and no source
// yet came from.
func (c *config) noteSources(fs *flag.FlagSet, source func(key string) string) {
	fs.Visit(func(f *flag.Flag) {
		if _, ok := c.from[f.Name]; !ok {
			c.from[f.Name] = source(f.Name)
		}
	})
}

// findFile picks the config file; looked lists the places searched, for
// the message when none has what is needed.
func (c *config) findFile(explicit string, getenv func(string) string) (looked []string, err error) {
	if explicit != "" {
		via := c.from[keyConfig]
		if _, err := os.Stat(explicit); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, usageErrorf("config file %s (from %s) does not exist: write base_url and jwt_token to it, or point %s elsewhere", explicit, via, via)
			}
			return nil, usageErrorf("config file %s (from %s): %v", explicit, via, err)
		}
		c.file = explicit
		return nil, nil
	}
	looked = []string{"--config", "$" + envConfig}
	var candidates []string
	if home := getenv("HOME"); home != "" {
		candidates = append(candidates, filepath.Join(home, userConfigSubpath))
	}
	candidates = append(candidates, systemConfigPath)
	for _, p := range candidates {
		looked = append(looked, p)
		if _, err := os.Stat(p); err == nil {
			c.file = p
			return looked, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, usageErrorf("config file %s: %v", p, err)
		}
	}
	return looked, nil
}

func (c *config) validate(looked []string) error {
	c.baseURL = strings.TrimSpace(c.baseURL)
	c.token = strings.TrimSpace(c.token)
	if c.file == "" && (c.baseURL == "" || c.token == "") {
		return usageErrorf("no config file (looked for %s): write base_url and jwt_token to one, or set %s_BASE_URL and %s_JWT_TOKEN",
			joinAnd(looked), envPrefix, envPrefix)
	}
	if c.baseURL == "" {
		return usageErrorf("no base_url in %s: add the server's address, like base_url: http://localhost:6302", c.file)
	}
	if c.token == "" {
		return usageErrorf("no jwt_token in %s: add the token your administrator minted with flight-power-server token", c.file)
	}
	u, err := url.Parse(c.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return usageErrorf("base_url %q (from %s) is not a server address like http://localhost:6302", c.baseURL, c.from[keyBaseURL])
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	if c.timeout <= 0 {
		return usageErrorf("timeout %s (from %s) must be positive", c.timeout, c.from[keyTimeout])
	}
	return nil
}

func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// parseYAML is ff's config file parser for config.yaml: a flat mapping of
// base_url, jwt_token and timeout. A key left empty, as the original
// client's reference file has them, sets nothing. It stands in for ffyaml,
// which would bring gopkg.in/yaml.v2 into the module next to yaml.v3.
func parseYAML(r io.Reader, set func(name, value string) error) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty, or only comments
			return nil
		}
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want key: value lines (base_url, jwt_token, timeout)", m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch k.Value {
		case keyBaseURL, keyToken, keyTimeout:
		default:
			return fmt.Errorf("line %d: unknown key %q: the keys are base_url, jwt_token and timeout", k.Line, k.Value)
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: %s must be a single value", v.Line, k.Value)
		}
		if v.Tag == "!!null" {
			continue
		}
		if err := set(k.Value, strings.TrimSpace(v.Value)); err != nil {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner // ff's wrapping names the flag, not the key
			}
			return fmt.Errorf("line %d: %s: %w", v.Line, k.Value, err)
		}
	}
	return nil
}
