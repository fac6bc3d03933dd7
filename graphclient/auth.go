package graphclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	kiotaazure "github.com/microsoft/kiota-authentication-azure-go"
)

// DefaultScope is the scope requested for Microsoft Graph (global cloud).
const DefaultScope = "https://graph.microsoft.com/.default"

// tokenError is a failure to put a token on a request, already classified.
type tokenError struct {
	code   string
	class  error
	err    error
	claims string // of an ErrMFARequired
}

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// tokenProvider gives a bearer token for requests to the configured Graph
// host and refuses every other host with an error. kiota's own providers
// answer "" (no token, no error) for a host they do not know, which would
// send requests unauthenticated (msgraph-go.md §3).
type tokenProvider struct {
	hosts  *absauth.AllowedHostsValidator
	static string                      // the emulator's token; or
	cred   absauth.AccessTokenProvider // azidentity through kiota (CAE claims included)
}

var _ absauth.AccessTokenProvider = (*tokenProvider)(nil)

func newTokenProvider(base *url.URL, static string, cred azcore.TokenCredential, scopes []string) (*tokenProvider, error) {
	hosts, err := absauth.NewAllowedHostsValidatorErrorCheck([]string{base.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("allowed hosts: %w", err)
	}
	p := &tokenProvider{hosts: hosts, static: static}
	if cred != nil {
		az, err := kiotaazure.NewAzureIdentityAccessTokenProviderWithScopesAndValidHosts(cred, scopes, []string{base.Hostname()})
		if err != nil {
			return nil, fmt.Errorf("azure token provider: %w", err)
		}
		p.cred = az
	}
	return p, nil
}

// GetAuthorizationToken implements absauth.AccessTokenProvider.
func (p *tokenProvider) GetAuthorizationToken(ctx context.Context, u *url.URL, extra map[string]any) (string, error) {
	// The validator holds exactly the base URL's host (never empty, which
	// would allow every host).
	if !p.hosts.IsUrlHostValid(u) {
		return "", &tokenError{code: "hostNotAllowed", class: ErrPermanent,
			err: fmt.Errorf("refusing to send a token to host %q: not the configured Graph host", sanitize(u.Hostname(), 100))}
	}
	// kiota answers a 401 claims challenge by asking for a token with the
	// claims and sending the request again. An application cannot get a
	// token with multifactor claims, so that challenge ends the call here.
	if raw, ok := extra["claims"].(string); ok && raw != "" {
		if js, err := decodeClaims(raw); err == nil {
			if claims, ok := mfaClaims(js); ok {
				return "", &tokenError{code: "mfaRequired", class: ErrMFARequired, claims: claims,
					err: fmt.Errorf("graph asked for a token with multifactor claims %s, which an application cannot obtain", claims)}
			}
		}
	}
	if p.static != "" {
		return p.static, nil
	}
	tok, err := p.cred.GetAuthorizationToken(ctx, u, extra)
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", tokenFailure(err)
	}
	if tok == "" {
		return "", &tokenError{code: "noToken", class: ErrPermission, err: errors.New("the credential returned no token")}
	}
	return tok, nil
}

// GetAllowedHostsValidator implements absauth.AccessTokenProvider.
func (p *tokenProvider) GetAllowedHostsValidator() *absauth.AllowedHostsValidator { return p.hosts }

// tokenFailure classifies an error of the identity platform: throttling,
// server errors and network errors are transient; everything azcore marks
// non-retriable (bad secret, unknown client, unavailable credential) is a
// permission problem.
func tokenFailure(err error) error {
	te := &tokenError{code: "tokenAcquisitionFailed", class: ErrTransient,
		err: fmt.Errorf("get token: %s", sanitize(err.Error(), 300))}
	var afe *azidentity.AuthenticationFailedError
	var nr interface{ NonRetriable() }
	switch {
	case errors.As(err, &afe) && afe.RawResponse != nil:
		s := afe.RawResponse.StatusCode
		if s != http.StatusTooManyRequests && s != http.StatusRequestTimeout && s < 500 {
			te.class = ErrPermission
		}
	case errors.As(err, &nr):
		te.class = ErrPermission
	}
	return te
}

// NewCredentialFromEnv returns an azidentity credential chosen from the
// environment, in this order:
//
//   - AZURE_CLIENT_SECRET set: client secret (needs AZURE_TENANT_ID,
//     AZURE_CLIENT_ID);
//   - AZURE_CLIENT_CERTIFICATE_PATH set: client certificate, PEM or PKCS#12,
//     with AZURE_CLIENT_CERTIFICATE_PASSWORD if the file is encrypted and
//     AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=true for SNI;
//   - AZURE_FEDERATED_TOKEN_FILE set: workload identity (needs
//     AZURE_TENANT_ID, AZURE_CLIENT_ID);
//   - otherwise: managed identity, user-assigned when AZURE_CLIENT_ID is set.
//
// AZURE_AUTHORITY_HOST selects another cloud, as azidentity reads it.
func NewCredentialFromEnv() (azcore.TokenCredential, error) {
	return newCredentialFromEnv(os.Getenv)
}

func newCredentialFromEnv(getenv func(string) string) (azcore.TokenCredential, error) {
	tenant, client := getenv("AZURE_TENANT_ID"), getenv("AZURE_CLIENT_ID")
	need := func(kind string) error {
		switch {
		case tenant == "":
			return fmt.Errorf("%s credential: AZURE_TENANT_ID is not set", kind)
		case client == "":
			return fmt.Errorf("%s credential: AZURE_CLIENT_ID is not set", kind)
		}
		return nil
	}
	switch {
	case getenv("AZURE_CLIENT_SECRET") != "":
		if err := need("client secret"); err != nil {
			return nil, err
		}
		cred, err := azidentity.NewClientSecretCredential(tenant, client, getenv("AZURE_CLIENT_SECRET"), nil)
		if err != nil {
			return nil, fmt.Errorf("client secret credential: %w", err)
		}
		return cred, nil
	case getenv("AZURE_CLIENT_CERTIFICATE_PATH") != "":
		if err := need("client certificate"); err != nil {
			return nil, err
		}
		path := getenv("AZURE_CLIENT_CERTIFICATE_PATH")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("client certificate credential: read AZURE_CLIENT_CERTIFICATE_PATH: %w", err)
		}
		var password []byte
		if pw := getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"); pw != "" {
			password = []byte(pw)
		}
		certs, key, err := azidentity.ParseCertificates(data, password)
		if err != nil {
			// ParseCertificates' errors do not contain the password.
			return nil, fmt.Errorf("client certificate credential: parse %s: %w", path, err)
		}
		sendChain, _ := strconv.ParseBool(getenv("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"))
		cred, err := azidentity.NewClientCertificateCredential(tenant, client, certs, key,
			&azidentity.ClientCertificateCredentialOptions{SendCertificateChain: sendChain})
		if err != nil {
			return nil, fmt.Errorf("client certificate credential: %w", err)
		}
		return cred, nil
	case getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
		if err := need("workload identity"); err != nil {
			return nil, err
		}
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			TenantID: tenant, ClientID: client, TokenFilePath: getenv("AZURE_FEDERATED_TOKEN_FILE"),
		})
		if err != nil {
			return nil, fmt.Errorf("workload identity credential: %w", err)
		}
		return cred, nil
	default:
		opts := &azidentity.ManagedIdentityCredentialOptions{}
		if client != "" {
			opts.ID = azidentity.ClientID(client)
		}
		cred, err := azidentity.NewManagedIdentityCredential(opts)
		if err != nil {
			return nil, fmt.Errorf("managed identity credential: %w", err)
		}
		return cred, nil
	}
}
