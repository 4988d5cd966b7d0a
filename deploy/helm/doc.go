// Package helm holds the tests of tokenmeter's Helm chart (the directory
// tokenmeter/ beside this file) and of the plain manifests rendered from it
// (deploy/kubernetes). It has no code of its own: the tests lint the chart
// with Helm's own linter, render it with Helm's own engine, decode every
// object strictly into its real Kubernetes API type, parse the rendered
// tokenmeter.yaml with internal/config, and hold the committed manifests to a
// fresh render (`make manifests` writes them).
//
// The tests live here, beside the chart, rather than under test/: they need
// no running process, only the chart's files, and Helm and the Kubernetes
// types stay out of every other package's build.
package helm
