package graphclient

import (
	"context"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/reports"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// Tenant-wide reads, one page per call, so that a caller scanning every
// user retries a failed page alone and can pace itself between pages.

// RegistrationDetails is one user's entry in the authentication-methods
// registration report (userRegistrationDetails).
type RegistrationDetails struct {
	// UserID is the user's object id (lower case).
	UserID            string
	UserPrincipalName string
	// MethodsRegistered names the registered methods as the report does:
	// mobilePhone, alternateMobilePhone, officePhone, email,
	// microsoftAuthenticatorPush, passKeyDeviceBound, ... The password is
	// not listed.
	MethodsRegistered []string
	IsAdmin           bool
	IsMFARegistered   bool
	// LastUpdated is when the service last refreshed the entry (zero when
	// not said): the report lags the directory.
	LastUpdated time.Time
}

// registrationSelect is the $select of the report: what reconciliation
// reads, nothing more.
func registrationSelect() []string {
	return []string{"id", "userPrincipalName", "methodsRegistered", "isAdmin", "isMfaRegistered", "lastUpdatedDateTime"}
}

// RegistrationDetailsPage reads one page of GET
// /reports/authenticationMethods/userRegistrationDetails: the first page
// when next is "", else the page at next, an @odata.nextLink an earlier
// page returned (it must point under the client's base URL). It returns the
// entries and the link to the following page, "" after the last one.
// Microsoft documents that the report does not cover disabled users; it
// needs AuditLog.Read.All (an error classed ErrPermission without it).
func (c *Client) RegistrationDetailsPage(ctx context.Context, next string) ([]RegistrationDetails, string, error) {
	const op = "list registration details"
	var res models.UserRegistrationDetailsCollectionResponseable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		b := reports.NewAuthenticationMethodsUserRegistrationDetailsRequestBuilderInternal(
			map[string]string{"baseurl": c.base.String()}, c.adapter)
		var err error
		if next != "" {
			res, err = b.WithUrl(next).Get(ctx, nil)
			return err
		}
		res, err = b.Get(ctx, &reports.AuthenticationMethodsUserRegistrationDetailsRequestBuilderGetRequestConfiguration{
			QueryParameters: &reports.AuthenticationMethodsUserRegistrationDetailsRequestBuilderGetQueryParameters{Select: registrationSelect()},
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if res == nil {
		return nil, "", invalidResponse(op, resp, "empty body", ErrTransient)
	}
	out := make([]RegistrationDetails, 0, len(res.GetValue()))
	for _, v := range res.GetValue() {
		if v == nil {
			continue
		}
		d := RegistrationDetails{
			UserID:            strings.ToLower(str(v.GetId())),
			UserPrincipalName: str(v.GetUserPrincipalName()),
			MethodsRegistered: v.GetMethodsRegistered(),
			IsAdmin:           boolean(v.GetIsAdmin()),
			IsMFARegistered:   boolean(v.GetIsMfaRegistered()),
			LastUpdated:       tm(v.GetLastUpdatedDateTime()),
		}
		if !isGUID(d.UserID) {
			return nil, "", invalidResponse(op, resp, "an entry's id is not a GUID", ErrPermanent)
		}
		out = append(out, d)
	}
	link, err := c.nextPage(op, res.GetOdataNextLink())
	if err != nil {
		return nil, "", err
	}
	return out, link, nil
}

// UsersPageSize is the $top of UsersPage: Graph's largest page of users.
const UsersPageSize = 999

// UsersPage reads one page of every user (GET /users with $select of id,
// userPrincipalName, userType and accountEnabled, $top UsersPageSize): the
// first page when next is "", else the page at next (see
// RegistrationDetailsPage). It returns the users and the link to the
// following page, "" after the last one.
func (c *Client) UsersPage(ctx context.Context, next string) ([]User, string, error) {
	const op = "list users"
	var res models.UserCollectionResponseable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		if next != "" {
			res, err = c.root().WithUrl(next).Get(ctx, nil)
			return err
		}
		top := int32(UsersPageSize)
		res, err = c.root().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: userSelect(), Top: &top},
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if res == nil {
		return nil, "", invalidResponse(op, resp, "empty body", ErrTransient)
	}
	out := make([]User, 0, len(res.GetValue()))
	for _, u := range res.GetValue() {
		if u == nil {
			continue
		}
		v := User{
			ID:                strings.ToLower(str(u.GetId())),
			UserPrincipalName: str(u.GetUserPrincipalName()),
			UserType:          str(u.GetUserType()),
			AccountEnabled:    boolean(u.GetAccountEnabled()),
		}
		if !isGUID(v.ID) {
			return nil, "", invalidResponse(op, resp, "a user's id is not a GUID", ErrPermanent)
		}
		out = append(out, v)
	}
	link, err := c.nextPage(op, res.GetOdataNextLink())
	if err != nil {
		return nil, "", err
	}
	return out, link, nil
}

// nextPage checks an @odata.nextLink before the token goes to it.
func (c *Client) nextPage(op string, link *string) (string, error) {
	if link == nil || *link == "" {
		return "", nil
	}
	return c.sameOrigin(op, *link)
}
