package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/apikey"
)

// keysCmd is "keys create|list|revoke|rotate|hash": the API keys requests
// are attributed by. All but hash go through a running tokenmeter's admin
// API; hash is offline, for the config file's keys.
type keysCmd struct {
	Create keysCreateCmd `cmd:"" help:"Create a runtime API key; its secret is printed once."`
	List   keysListCmd   `cmd:"" help:"Every API key: id, name, status, dimensions."`
	Revoke keysRevokeCmd `cmd:"" help:"Revoke a runtime API key: it opens nothing from then on."`
	Rotate keysRotateCmd `cmd:"" help:"Give a runtime API key a new secret, the old kept for a grace."`
	Hash   keysHashCmd   `cmd:"" help:"Print the digest of a key read from stdin, for the config file (offline)."`
}

// onceNote follows every secret printed: the server keeps only a digest.
const onceNote = "This secret will not be shown again: store it now (tokenmeter keeps only its digest)."

type keysCreateCmd struct {
	adminFlags
	ID        string   `name:"id" placeholder:"ID" help:"The key's id: letters, digits, '-', '_', '.' (default: a new key_... id)."`
	Name      string   `name:"name" placeholder:"N" help:"A name for people, e.g. the service that holds the key."`
	Dimension []string `name:"dimension" sep:"none" placeholder:"NAME=VALUE" help:"A dimension the key's requests are charged to, e.g. project=alpha; repeatable."`
	JSON      bool     `name:"json" help:"Print the API's JSON, secret included."`
}

func (*keysCreateCmd) Help() string {
	return "Each --dimension must be one the server's attribution reads from a key: {api_key: NAME} in a dimension's from."
}

func (c *keysCreateCmd) Run(ctx context.Context, s stdio) error {
	dims, err := parseDimensions(c.Dimension)
	if err != nil {
		return usageError{err.Error()}
	}
	body, err := json.Marshal(struct {
		ID         string            `json:"id,omitempty"`
		Name       string            `json:"name,omitempty"`
		Dimensions map[string]string `json:"dimensions,omitempty"`
	}{c.ID, c.Name, dims})
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	var out keyAndSecret
	raw, err := c.client().call(ctx, "POST", "/v1/keys", body, &out)
	if err != nil || c.JSON {
		return jsonOr(s.out, raw, err)
	}
	_, err = fmt.Fprintf(s.out, "key %s created (%s)\nsecret: %s\n%s\n", out.Key.ID, dimensionList(out.Key.Dimensions), out.Secret, onceNote)
	return err
}

// keyAndSecret is the answer of create and rotate.
type keyAndSecret struct {
	Key    admin.KeyInfo `json:"key"`
	Secret string        `json:"secret"`
}

// parseDimensions reads repeated NAME=VALUE flags; a name given twice is a
// mistake, not a choice of the last.
func parseDimensions(flags []string) (map[string]string, error) {
	dims := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--dimension %q: want NAME=VALUE, e.g. project=alpha", f)
		}
		if _, dup := dims[k]; dup {
			return nil, fmt.Errorf("--dimension %s: given twice", k)
		}
		dims[k] = v
	}
	return dims, nil
}

// dimensionList is "project=alpha, team=x", by name, or "no dimensions".
func dimensionList(dims map[string]string) string {
	if len(dims) == 0 {
		return "no dimensions"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(dims)) {
		parts = append(parts, k+"="+dims[k])
	}
	return strings.Join(parts, ", ")
}

type keysListCmd struct {
	adminFlags
	JSON bool `name:"json" help:"Print the API's JSON."`
}

func (c *keysListCmd) Run(ctx context.Context, s stdio) error {
	var out struct {
		Keys []admin.KeyInfo `json:"keys"`
	}
	raw, err := c.client().call(ctx, "GET", "/v1/keys", nil, &out)
	if err != nil || c.JSON {
		return jsonOr(s.out, raw, err)
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tSOURCE\tDIMENSIONS\tCREATED")
	for _, k := range out.Keys {
		dims, created := strings.ReplaceAll(dimensionList(k.Dimensions), ", ", ","), "-"
		if len(k.Dimensions) == 0 {
			dims = "-"
		}
		if !k.Created.IsZero() {
			created = k.Created.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, orDash(k.Name), k.Status, k.Source, dims, created)
	}
	return tw.Flush()
}

// orDash is s, or "-" in a table cell when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type keysRevokeCmd struct {
	adminFlags
	ID string `arg:"" name:"id" help:"The runtime key to revoke."`
}

func (c *keysRevokeCmd) Run(ctx context.Context, s stdio) error {
	var k admin.KeyInfo
	if _, err := c.client().call(ctx, "POST", "/v1/keys/"+url.PathEscape(c.ID)+"/revoke", nil, &k); err != nil {
		return err
	}
	_, err := fmt.Fprintf(s.out, "key %s revoked at %s\n", k.ID, k.Revoked.Format(time.RFC3339))
	return err
}

type keysRotateCmd struct {
	adminFlags
	Grace time.Duration `name:"grace" placeholder:"D" help:"How long the old secret keeps working, e.g. 1h (default: not at all)."`
	JSON  bool          `name:"json" help:"Print the API's JSON, secret included."`
	ID    string        `arg:"" name:"id" help:"The runtime key to rotate."`
}

func (c *keysRotateCmd) Run(ctx context.Context, s stdio) error {
	body, err := json.Marshal(map[string]string{"grace": c.Grace.String()})
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	var out keyAndSecret
	raw, err := c.client().call(ctx, "POST", "/v1/keys/"+url.PathEscape(c.ID)+"/rotate", body, &out)
	if err != nil || c.JSON {
		return jsonOr(s.out, raw, err)
	}
	old := "The old secret no longer works."
	if until := out.Key.Secrets.Until; len(until) > 0 {
		old = "The old secret works until " + slices.MaxFunc(until, time.Time.Compare).Format(time.RFC3339) + "."
	}
	_, err = fmt.Fprintf(s.out, "key %s rotated\nsecret: %s\n%s\n%s\n", out.Key.ID, out.Secret, onceNote, old)
	return err
}

// call is do, keeping the answer's JSON as it came for --json.
func (c *adminClient) call(ctx context.Context, method, path string, body []byte, out any) ([]byte, error) {
	var raw json.RawMessage
	if err := c.do(ctx, method, path, body, &raw); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("admin API: %s %s: %w", method, path, err)
	}
	return raw, nil
}

// jsonOr ends a command that printed nothing yet: err when there is one,
// else the API's JSON.
func jsonOr(w io.Writer, raw []byte, err error) error {
	if err != nil {
		return err
	}
	return writeJSON(w, raw)
}

type keysHashCmd struct {
	SecretEnv  string `name:"secret-env" default:"TOKENMETER_KEY_SECRET" placeholder:"NAME" help:"Environment variable holding the server's key-hashing secret, as attribution.api_keys.secret_env names it (default: ${default})."`
	SecretFile string `name:"secret-file" type:"path" placeholder:"FILE" help:"Instead: the file holding it, as attribution.api_keys.secret_file names it (white space around it ignored, as the server does)."`
}

func (*keysHashCmd) Help() string {
	return "Reads one key from stdin and prints its digest (hmac-sha256:...) for attribution.api_keys.keys[].hash. " +
		"The key is not an argument, which ps and the shell's history would show: e.g. tokenmeter keys hash < key.txt."
}

// maxKeyInput bounds what hash reads: a key is a line, not a file.
const maxKeyInput = 64 << 10

func (c *keysHashCmd) Run(s stdio) error {
	secret, from := []byte(os.Getenv(c.SecretEnv)), c.SecretEnv
	if c.SecretFile != "" {
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return usageError{fmt.Sprintf("keys hash: %v", err)}
		}
		secret, from = bytes.TrimSpace(b), c.SecretFile
	} else if len(secret) == 0 {
		return usageError{fmt.Sprintf("keys hash: %s is empty or unset; set it to the secret the server hashes keys with (its attribution.api_keys.secret_env)", c.SecretEnv)}
	}
	h, err := apikey.NewHasher(secret)
	if err != nil {
		return usageError{fmt.Sprintf("keys hash: %s: %v", from, err)}
	}
	key, err := readKey(os.Stdin, s.err)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(s.out, h.Hash(key))
	return err
}

// readKey reads one key from in. At a terminal it prompts and takes the
// first line; otherwise it takes the whole input, which must be one line.
// Spaces around the key go, as they go from a header the key arrives in.
func readKey(in *os.File, prompt io.Writer) (string, error) {
	var text string
	if st, err := in.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		fmt.Fprint(prompt, "key: ")
		line, err := bufio.NewReader(io.LimitReader(in, maxKeyInput)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("keys hash: read the key: %w", err)
		}
		text = line
	} else {
		b, err := io.ReadAll(io.LimitReader(in, maxKeyInput+1))
		if err != nil {
			return "", fmt.Errorf("keys hash: read the key: %w", err)
		}
		if len(b) > maxKeyInput {
			return "", usageError{"keys hash: stdin holds more than 64 KiB; want one key"}
		}
		text = string(b)
	}
	key := strings.TrimSpace(text)
	switch {
	case key == "":
		return "", usageError{"keys hash: no key on stdin; e.g. tokenmeter keys hash < key.txt"}
	case strings.ContainsAny(key, "\r\n"):
		return "", usageError{"keys hash: stdin holds more than one line; want one key"}
	}
	return key, nil
}
