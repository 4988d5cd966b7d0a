// Package configmap lays files out as the kubelet does in a ConfigMap (or
// Secret) volume, and updates them the way it does, so that tests of what
// reads such a volume (config.Reloader, the hot-reload e2e test) meet the
// real layout rather than a plain file rewritten in place.
//
// The layout (the kubelet's AtomicWriter, pkg/volume/util in Kubernetes):
//
//	<dir>/tokenmeter.yaml -> ..data/tokenmeter.yaml
//	<dir>/..data          -> ..2026_01_02_15_04_05.123456789
//	<dir>/..2026_01_02_15_04_05.123456789/tokenmeter.yaml   (the content)
//
// An update writes every file into a new timestamped directory, points a
// new symlink ..data_tmp at it and renames that over ..data, which swaps
// all files at once; then it removes the old directory. A reader that
// watched a file's inode, or the visible symlink's own mtime, would miss it.
package configmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	dataLink = "..data"
	tmpLink  = "..data_tmp"
	// fileMode is a ConfigMap volume's defaultMode.
	fileMode = 0o644
)

// Write projects files (name → content) into dir, which must exist: the
// first call lays the volume out, each later one replaces its content at
// once. Names are flat (no '/') and may not start with "..", which the
// layout reserves.
func Write(dir string, files map[string][]byte) error {
	for name := range files {
		if name == "" || strings.ContainsRune(name, filepath.Separator) || strings.HasPrefix(name, "..") {
			return fmt.Errorf("configmap: file name %q: want a flat name that does not start with \"..\"", name)
		}
	}
	old, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("configmap: %w", err)
	}
	// The kubelet names the directory after the UTC time of the update and
	// makes it unique with a random suffix, as MkdirTemp does.
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, fileMode); err != nil {
			return fmt.Errorf("configmap: %w", err)
		}
		visible := filepath.Join(dir, name)
		if _, err := os.Lstat(visible); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join(dataLink, name), visible); err != nil {
				return fmt.Errorf("configmap: %w", err)
			}
		}
	}
	// The swap: rename(2) replaces ..data in one step, so a reader sees the
	// old set of files or the new one, never a mix.
	tmp := filepath.Join(dir, tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	if old == "" {
		return nil
	}
	return removeOld(dir, old, files)
}

// removeOld removes the visible links of files the update dropped, then the
// previous timestamped directory.
func removeOld(dir, old string, files map[string][]byte) error {
	entries, err := os.ReadDir(filepath.Join(dir, old))
	if err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	for _, e := range entries {
		if _, kept := files[e.Name()]; !kept {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("configmap: %w", err)
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	return nil
}
