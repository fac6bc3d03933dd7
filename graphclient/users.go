package graphclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// userSelect is the $select of every user read.
func userSelect() []string { return []string{"id", "userPrincipalName", "userType", "accountEnabled"} }

// ResolveUser finds a user by object id (GET /users/{id}) or by
// userPrincipalName (GET /users?$filter=userPrincipalName eq '...', the UPN
// validated and OData-quoted; a UPN never goes into a path). An unknown
// user is ErrUserNotFound.
func (c *Client) ResolveUser(ctx context.Context, ref string) (User, error) {
	const op = "resolve user"
	r, err := ParseUserRef(ref)
	if err != nil {
		return User{}, fmt.Errorf("%s: %w", op, err)
	}
	var u models.Userable
	var resp response
	if r.ID != "" {
		resp, err = c.call(ctx, op, func(ctx context.Context) error {
			var err error
			u, err = c.root().ByUserId(r.ID).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: userSelect()},
			})
			return err
		})
		if err != nil {
			return User{}, err
		}
		if u == nil {
			return User{}, invalidResponse(op, resp, "empty body", ErrTransient)
		}
	} else {
		filter := "userPrincipalName eq " + odataQuote(r.UPN)
		var res models.UserCollectionResponseable
		resp, err = c.call(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = c.root().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Filter: &filter, Select: userSelect()},
			})
			return err
		})
		if err != nil {
			return User{}, err
		}
		if res == nil {
			return User{}, invalidResponse(op, resp, "empty body", ErrTransient)
		}
		// Trust but verify: keep only exact (case-insensitive) matches.
		var found []models.Userable
		for _, v := range res.GetValue() {
			if v != nil && strings.EqualFold(str(v.GetUserPrincipalName()), r.UPN) {
				found = append(found, v)
			}
		}
		switch len(found) {
		case 0:
			return User{}, fmt.Errorf("%s: no user has that userPrincipalName: %w", op, ErrUserNotFound)
		case 1:
			u = found[0]
		default:
			return User{}, invalidResponse(op, resp, fmt.Sprintf("%d users have that userPrincipalName", len(found)), ErrConflict)
		}
	}
	out := User{
		ID:                strings.ToLower(str(u.GetId())),
		UserPrincipalName: str(u.GetUserPrincipalName()),
		UserType:          str(u.GetUserType()),
		AccountEnabled:    boolean(u.GetAccountEnabled()),
	}
	if !isGUID(out.ID) {
		return User{}, invalidResponse(op, resp, "the user's id is not a GUID", ErrPermanent)
	}
	if r.ID != "" && out.ID != r.ID {
		return User{}, invalidResponse(op, resp, "the service returned another user", ErrPermanent)
	}
	return out, nil
}

// ResetPassword resets the password through the authentication-methods API
// (delegated callers only: app-only tokens get 403). With newPassword ""
// Graph generates one and ResetPassword returns it; otherwise it returns
// "". Graph answers 202 with the Location of a long-running operation;
// ResetPassword polls it (honouring Retry-After, bounded by ctx and by 5
// minutes) until it succeeds or fails. Transient errors while polling are
// retried inside, so that a flaky poll does not cause a second reset. On
// any error the generated password is not returned: nobody knows it, and a
// retry issues a new one.
func (c *Client) ResetPassword(ctx context.Context, userID, newPassword string) (generated string, err error) {
	const op = "reset password"
	if err := checkIDs(op, userID); err != nil {
		return "", err
	}
	if newPassword != "" {
		if err := validatePassword(newPassword); err != nil {
			return "", fmt.Errorf("%s: %w", op, err)
		}
	}
	ctx = ensureRequestID(ctx)
	body := users.NewItemAuthenticationMethodsItemResetPasswordPostRequestBody()
	if newPassword != "" {
		body.SetNewPassword(&newPassword)
	}
	var res models.PasswordResetResponseable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = c.authn(userID).Methods().ByAuthenticationMethodId(PasswordMethodID).ResetPassword().Post(ctx, body, nil)
		return err
	})
	if err != nil {
		return "", err
	}
	if newPassword == "" {
		if res != nil {
			generated = str(res.GetNewPassword())
		}
		if generated == "" {
			// A retry makes a new password; this one nobody knows.
			return "", invalidResponse(op, resp, "no generated password in the response", ErrTransient)
		}
	}
	if resp.location == "" {
		if resp.status == http.StatusAccepted {
			c.log.LogAttrs(ctx, slog.LevelWarn, "graph accepted the password reset without a Location to poll",
				slog.String("userId", userID))
		}
		return generated, nil
	}
	opURL, err := c.sameOrigin(op, resp.location)
	if err != nil {
		return "", err
	}
	if err := c.pollOperation(ctx, op, opURL, resp); err != nil {
		return "", err
	}
	return generated, nil
}

// pollOperation polls a long-running operation until it is terminal.
func (c *Client) pollOperation(ctx context.Context, op, opURL string, first response) error {
	deadline := c.now().Add(c.pollBudget)
	wait := c.pollWait(first, c.pollInterval)
	interval := c.pollInterval
	for {
		if c.now().Add(wait).After(deadline) {
			return &APIError{Op: op, Code: "operationTimeout",
				Message: fmt.Sprintf("the reset operation did not finish within %s", c.pollBudget), class: ErrTransient}
		}
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: poll operation: %w", op, err)
		}
		var lro models.LongRunningOperationable
		resp, err := c.call(ctx, op+": poll", func(ctx context.Context) error {
			var err error
			lro, err = users.NewItemAuthenticationOperationsLongRunningOperationItemRequestBuilder(opURL, c.adapter).Get(ctx, nil)
			return err
		})
		interval = min(interval*2, c.pollMaxWait)
		switch {
		case err != nil && errors.Is(err, ErrTransient):
			wait = c.pollWait(resp, interval)
			if ra, ok := RetryAfter(err); ok && ra > wait {
				wait = ra
			}
			continue
		case err != nil:
			return err
		case lro == nil:
			wait = c.pollWait(resp, interval)
			continue
		}
		status := models.UNKNOWNFUTUREVALUE_LONGRUNNINGOPERATIONSTATUS
		if s := lro.GetStatus(); s != nil {
			status = *s
		}
		switch status {
		case models.SUCCEEDED_LONGRUNNINGOPERATIONSTATUS:
			return nil
		case models.FAILED_LONGRUNNINGOPERATIONSTATUS:
			msg := "the reset operation failed"
			if d := str(lro.GetStatusDetail()); d != "" {
				msg += ": " + sanitize(d, 200)
			}
			return &APIError{Op: op, Status: resp.status, Code: "operationFailed", Message: msg,
				RequestID: sanitize(resp.requestID, 64), class: ErrPermanent}
		}
		wait = c.pollWait(resp, interval)
	}
}

// pollWait is the server's Retry-After (capped) or else the interval.
func (c *Client) pollWait(resp response, interval time.Duration) time.Duration {
	if ra, ok := parseRetryAfter(resp.retry, c.now()); ok && ra > 0 {
		return min(ra, c.pollMaxWait)
	}
	return interval
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetPassword sets the password through the user's passwordProfile (PATCH
// /users/{id}): the way for app-only callers, which resetPassword refuses.
func (c *Client) SetPassword(ctx context.Context, userID, password string, forceChange bool) error {
	const op = "set password"
	if err := checkIDs(op, userID); err != nil {
		return err
	}
	if err := validatePassword(password); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	pp := models.NewPasswordProfile()
	pp.SetPassword(&password)
	pp.SetForceChangePasswordNextSignIn(&forceChange)
	body := models.NewUser()
	body.SetPasswordProfile(pp)
	return c.patchUser(ctx, op, userID, body)
}

// SetAccountEnabled enables or disables sign-in for the account.
func (c *Client) SetAccountEnabled(ctx context.Context, userID string, enabled bool) error {
	const op = "set account enabled"
	if err := checkIDs(op, userID); err != nil {
		return err
	}
	body := models.NewUser()
	body.SetAccountEnabled(&enabled)
	return c.patchUser(ctx, op, userID, body)
}

func (c *Client) patchUser(ctx context.Context, op, userID string, body models.Userable) error {
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		_, err := c.root().ByUserId(userID).Patch(ctx, body, nil)
		return err
	})
	return err
}

// RevokeSessions invalidates the user's refresh tokens and session cookies
// (POST /users/{id}/revokeSignInSessions).
func (c *Client) RevokeSessions(ctx context.Context, userID string) error {
	const op = "revoke sessions"
	if err := checkIDs(op, userID); err != nil {
		return err
	}
	var res users.ItemRevokeSignInSessionsPostResponseable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = c.root().ByUserId(userID).RevokeSignInSessions().PostAsRevokeSignInSessionsPostResponse(ctx, nil)
		return err
	})
	if err != nil {
		return err
	}
	if res != nil && res.GetValue() != nil && !*res.GetValue() {
		return invalidResponse(op, resp, "the service answered false", ErrTransient)
	}
	return nil
}

// DirectoryRoles returns the display names of the directory roles the user
// is a direct member of (GET /users/{id}/memberOf, the
// #microsoft.graph.directoryRole entries), for protected-user checks.
func (c *Client) DirectoryRoles(ctx context.Context, userID string) ([]string, error) {
	const op = "list directory roles"
	if err := checkIDs(op, userID); err != nil {
		return nil, err
	}
	ctx = ensureRequestID(ctx)
	roles := []string{}
	err := listPages(ctx, c, op, func(ctx context.Context, next string) (models.DirectoryObjectCollectionResponseable, error) {
		b := c.root().ByUserId(userID).MemberOf()
		if next != "" {
			b = b.WithUrl(next)
		}
		return b.Get(ctx, nil)
	}, func(o models.DirectoryObjectable) {
		if r, ok := o.(*models.DirectoryRole); ok {
			if name := str(r.GetDisplayName()); name != "" {
				roles = append(roles, name)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return roles, nil
}
