// Package image holds the container image's Containerfile and the test that
// runs the image `make image` built (image_test.go): its config, its files,
// and its entrypoint serving /healthz and /readyz and printing its version.
// It has no Go code of its own.
package image
