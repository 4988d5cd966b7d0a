package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
)

// dimensions reads attribution.dimensions. Each is a name and either one
// header (the short form) or from: an ordered list of sources.
//
//   - {name: project, header: x-tokenmeter-project}
//   - name: user
//     from:
//   - {metadata: {namespace: envoy.filters.http.jwt_authn, path: [jwt_payload, sub]}}
//   - {attribute: connection.uri_san_peer_certificate}
//   - {header: x-tokenmeter-user}
func (w *walker) dimensions(n *yaml.Node, key string) []attribution.Dimension {
	var dims []attribution.Dimension
	w.Sequence(n, key, "a list of dimensions, each with name and header or from", func(item *yaml.Node, k string) {
		var d attribution.Dimension
		bad := false // a source was refused already: say it once
		w.mapping(item, k, map[string]func(*yaml.Node, string){
			"name":   w.str(&d.Name),
			"header": w.str(&d.Header),
			"from": func(n *yaml.Node, k string) {
				w.Sequence(n, k, "a list of sources: header, metadata, attribute or api_key", func(item *yaml.Node, k string) {
					s, ok := w.source(item, k)
					d.From, bad = append(d.From, s), bad || !ok
				})
				if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
					w.Fail(n, k, "want at least one source")
					bad = true
				}
			},
		})
		if bad {
			return
		}
		if err := attribution.Validate(append(dims, d)); err != nil {
			w.Fail(item, k, err.Error())
			return
		}
		dims = append(dims, d)
	})
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		w.Fail(n, key, "want at least one dimension")
	}
	return dims
}

// source reads one entry of a dimension's from list. ok is false when it
// was refused (and the error reported).
func (w *walker) source(n *yaml.Node, key string) (s attribution.Source, ok bool) {
	errs := len(*w.Errs)
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"header":    w.str(&s.Header),
		"attribute": w.str(&s.Attribute),
		"api_key":   w.str(&s.APIKey),
		"metadata": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){
				"namespace": w.str(&s.Namespace),
				"path": w.scalars("a list of keys, e.g. [jwt_payload, sub]", func(v string, _ *yaml.Node, _ string) {
					s.Path = append(s.Path, v)
				}),
			})
		},
	})
	if len(*w.Errs) > errs {
		return s, false
	}
	if err := s.Validate(); err != nil {
		w.Fail(n, key, err.Error())
		return s, false
	}
	return s, true
}

// apiKeys reads attribution.api_keys:
//
//	api_keys:
//	  secret_env: TOKENMETER_KEY_SECRET   # the HMAC secret, from the environment (or secret_file)
//	  unknown: deny                       # a key the table does not hold: deny or unknown
//	  missing: deny                       # a request without a key: deny or unknown
//	  keys:
//	    - {id: ci, name: CI, hash: "hmac-sha256:...", dimensions: {project: ci}}
func (w *walker) apiKeys(dst **apikey.Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		c := &apikey.Config{Unknown: apikey.Deny, Missing: apikey.Deny}
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"secret_env": func(n *yaml.Node, k string) {
				if env, ok := w.Scalar(n, k, "the name of an environment variable"); ok {
					c.SecretEnv = env
					// The value is a secret: name the variable, never the value.
					c.Secret = []byte(os.Getenv(env))
					w.checkSecret(n, k, c.Secret, "this environment variable")
				}
			},
			"secret_file": func(n *yaml.Node, k string) {
				if path, ok := w.Scalar(n, k, "a file name"); ok {
					c.SecretFile = path
					if !filepath.IsAbs(path) {
						path = filepath.Join(filepath.Dir(w.File), path)
					}
					b, err := os.ReadFile(path)
					if err != nil {
						w.Fail(n, k, "cannot read it: "+errors.Unwrap(err).Error())
						return
					}
					c.Secret = bytes.TrimSpace(b)
					w.checkSecret(n, k, c.Secret, "this file")
				}
			},
			"unknown": w.keyPolicy(&c.Unknown),
			"missing": w.keyPolicy(&c.Missing),
			"keys": func(n *yaml.Node, k string) {
				w.Sequence(n, k, "a list of keys, each with id, hash and dimensions", func(item *yaml.Node, k string) {
					if key, ok := w.apiKey(item, k); ok {
						c.Keys = append(c.Keys, key)
						w.keepItem("api_keys", k)
					}
				})
			},
		})
		if (c.SecretEnv == "") == (c.SecretFile == "") {
			w.Fail(n, k, "want one of secret_env and secret_file: the environment variable or the file holding the secret keys are hashed with")
		}
		*dst = c
	}
}

// checkSecret checks a hashing secret's length; where names its source.
func (w *walker) checkSecret(n *yaml.Node, k string, secret []byte, where string) {
	switch {
	case len(secret) == 0:
		w.Fail(n, k, where+" is empty or unset")
	case len(secret) < apikey.MinSecretBytes:
		w.Fail(n, k, fmt.Sprintf("%s holds %d bytes; want at least %d (e.g. openssl rand -hex 32)", where, len(secret), apikey.MinSecretBytes))
	}
}

func (w *walker) keyPolicy(dst *apikey.Policy) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.value(n, k, "deny or unknown", func(v string) bool {
			switch p := apikey.Policy(v); p {
			case apikey.Deny, apikey.Attribute:
				*dst = p
				return true
			}
			return false
		})
	}
}

// apiKey reads one entry of attribution.api_keys.keys.
func (w *walker) apiKey(n *yaml.Node, key string) (k apikey.Key, ok bool) {
	errs := len(*w.Errs)
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"id":   w.str(&k.ID),
		"name": w.str(&k.Name),
		"hash": func(n *yaml.Node, key string) {
			if v, ok := w.Scalar(n, key, "a digest"); ok {
				d, err := apikey.ParseDigest(v)
				if err != nil {
					w.Fail(n, key, err.Error())
					return
				}
				k.Secrets = []apikey.Secret{{Digest: d}}
			}
		},
		"dimensions": w.stringMap(&k.Dimensions, "a mapping of dimension to value"),
	})
	if len(*w.Errs) > errs {
		return k, false
	}
	if err := apikey.CheckID(k.ID); err != nil {
		w.Fail(n, key, err.Error())
		return k, false
	}
	if len(k.Secrets) == 0 {
		w.Fail(n, key, "want hash: the key's digest (tokenmeter keys hash makes one)")
		return k, false
	}
	return k, true
}

// checkAPIKeys checks what spans attribution's parts: a key's dimensions
// are read by some {api_key: ...} source, ids and digests are unique, and
// an {api_key: ...} source has keys to read.
func (w *walker) checkAPIKeys(c *Config) {
	fields := attribution.KeyFields(c.Dimensions)
	if c.APIKeys == nil {
		if len(fields) > 0 {
			f := slices.Sorted(maps.Keys(fields))[0]
			w.failKey("attribution.dimensions", f, "a dimension reads {api_key: "+f+"} but attribution.api_keys is not set")
		}
		return
	}
	for i, k := range c.APIKeys.Keys {
		key := w.itemKeys["api_keys"][i]
		if err := apikey.CheckDimensions(k.Dimensions, fields); err != nil {
			w.failKey(key+".dimensions", "", err.Error())
		}
	}
	if _, err := apikey.NewTable(c.APIKeys.Keys); err != nil {
		w.failKey("attribution.api_keys.keys", "", err.Error())
	}
}
