package config

import (
	"fmt"

	"go.temporal.io/sdk/client"
	temporalenv "go.temporal.io/sdk/contrib/envconfig"
)

// Defaults of the Temporal connection when neither a temporal CLI profile, a TEMPORAL_*
// variable nor a TOKENWARDEN_TEMPORAL_* override names one: the dev server of `make run`.
const (
	DefaultTemporalAddress   = "localhost:7233"
	DefaultTemporalNamespace = "default"
)

// ClientOptions builds the SDK client options of the worker and the starter, as the
// temporal CLI would connect: the profile of its configuration file (TEMPORAL_CONFIG_FILE,
// TEMPORAL_PROFILE), then the TEMPORAL_* variables (address, namespace, API key, TLS
// client certificate, key, CA and server name, gRPC metadata), then tokenwarden's own
// TOKENWARDEN_TEMPORAL_ADDRESS and TOKENWARDEN_TEMPORAL_NAMESPACE when set. An API key
// turns TLS on unless the profile or TEMPORAL_TLS=false turns it off, as in the CLI.
//
// env is where the TEMPORAL_* variables are read (nil: the process environment). The
// caller adds its logger, data converter and metrics handler. The profile's codec is
// never used: tokenwarden encrypts with its own key file or codec endpoint
// (internal/codec), and a worker calling a remote codec on every replay would stall.
//
// Errors never include the API key or key material: they name the setting at fault.
func (t Temporal) ClientOptions(env temporalenv.EnvLookup) (client.Options, error) {
	prof, err := temporalenv.LoadClientConfigProfile(temporalenv.LoadClientConfigProfileOptions{EnvLookup: env})
	if err != nil {
		// The loader's errors name a file, a profile or a variable, never its value.
		return client.Options{}, fmt.Errorf("temporal client configuration (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, TEMPORAL_*): %w", err)
	}
	if t.TemporalAddress != "" {
		prof.Address = t.TemporalAddress
	}
	if t.TemporalNamespace != "" {
		prof.Namespace = t.TemporalNamespace
	}
	if prof.Address == "" {
		prof.Address = DefaultTemporalAddress
	}
	if prof.Namespace == "" {
		prof.Namespace = DefaultTemporalNamespace
	}
	if err := checkToken(prof.APIKey); err != nil {
		return client.Options{}, fmt.Errorf("TEMPORAL_API_KEY (or the profile's api_key): %w", err)
	}
	opts, err := prof.ToClientOptions(temporalenv.ToClientOptionsRequest{})
	if err != nil {
		// ToClientOptions reports which TLS file or field failed to load; crypto/tls's
		// parse errors describe the PEM block, not its bytes.
		return client.Options{}, fmt.Errorf("temporal client TLS settings (TEMPORAL_TLS_*, or the profile's tls table): %w", err)
	}
	switch t.TemporalGrpcCompression {
	case "", "gzip":
		// The SDK's default.
	case "none":
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	default:
		return client.Options{}, fmt.Errorf("%s_TEMPORAL_GRPC_COMPRESSION: %q is not gzip or none", Prefix, t.TemporalGrpcCompression)
	}
	return opts, nil
}

// DescribeConnection summarises opts for logs and error messages: address, namespace,
// whether TLS is on (and with a client certificate) and whether an API key is sent. It
// never shows the key or any TLS material.
func DescribeConnection(opts client.Options) string {
	tlsMode := "plaintext"
	if tc := opts.ConnectionOptions.TLS; tc != nil && !opts.ConnectionOptions.TLSDisabled {
		tlsMode = "tls"
		if len(tc.Certificates) > 0 {
			tlsMode = "mtls"
		}
	}
	auth := "none"
	if opts.Credentials != nil {
		auth = "api-key"
	}
	return fmt.Sprintf("%s (namespace %q, %s, auth %s)", opts.HostPort, opts.Namespace, tlsMode, auth)
}

// resolve replaces the overrides with the effective address and namespace, so that
// everything downstream (the codec endpoint's namespace check, the start-up log, error
// messages) sees the namespace the client uses. Bad TEMPORAL_* settings thus fail at
// load, as bad TOKENWARDEN_* ones do.
func (t *Temporal) resolve() error {
	opts, err := t.ClientOptions(nil)
	if err != nil {
		return err
	}
	t.TemporalAddress, t.TemporalNamespace = opts.HostPort, opts.Namespace
	return nil
}
