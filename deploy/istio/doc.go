// Package istio holds no code: this directory is the Istio material that puts
// tokenmeter into a mesh (EnvoyFilters for sidecars, an egress gateway and an
// ingress gateway; the providers' ServiceEntry), and its tests prove it. They
// decode every resource strictly against istio.io/client-go's types and each
// patch's value as its Envoy proto, apply the patches the way Istio does to
// listeners built the way Istio builds them, and run the real Envoy on the
// result in front of the real tokenmeter. docs/deploy.md, "Istio", is the
// guide.
package istio
