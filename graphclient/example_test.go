package graphclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// Example registers a mobile phone for a user found by UPN, against the
// Graph emulator, with one retry policy around each logical operation.
func Example() {
	emu, err := graphclienttest.New(graphclienttest.Options{Token: "dev-token"})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(emu) // 127.0.0.1, random port
	defer srv.Close()
	if err := emu.PutUser(graphclienttest.User{ID: "5f1b6c2e-0c1d-4d0e-9a7b-2f4e8d9c1a00", UserPrincipalName: "adele.vance@contoso.com"}); err != nil {
		panic(err)
	}

	c, err := graphclient.New(graphclient.Config{BaseURL: srv.URL + "/v1.0", Token: "dev-token"})
	if err != nil {
		panic(err)
	}
	retry := graphclient.DefaultRetryPolicy()
	// One client-request-id per logical operation, the same on each retry.
	ctx := graphclient.WithRequestID(context.Background(), "7f1c2b9e-4a53-4c1e-9b1f-1f3a8c2d0e55")

	var user graphclient.User
	_, err = retry.Do(ctx, func(ctx context.Context) error {
		user, err = c.ResolveUser(ctx, "adele.vance@contoso.com")
		return err
	})
	if err != nil {
		panic(err)
	}
	var phone graphclient.Method
	attempts, err := retry.Do(ctx, func(ctx context.Context) error {
		phone, err = c.AddPhone(ctx, user.ID, graphclient.PhoneMobile, "+1 4255550100")
		return err
	})
	fmt.Println(user.ID, attempts, err)
	fmt.Println(phone.Kind, phone.ID, phone.PhoneNumber)

	// A second mobile phone breaks a rule of the service: not retried.
	_, err = c.AddPhone(ctx, user.ID, graphclient.PhoneMobile, "+1 4255550199")
	fmt.Println(errors.Is(err, graphclient.ErrConflict), errors.Is(err, graphclient.ErrTransient))
	// Output:
	// 5f1b6c2e-0c1d-4d0e-9a7b-2f4e8d9c1a00 1 <nil>
	// phone 3179e48a-750b-4051-897c-87b9720928f7 +1 4255550100
	// true false
}
