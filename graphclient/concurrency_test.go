package graphclient

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestContractConcurrentCalls drives one Client from many goroutines, as the
// worker does. Run with -race (make test-race): a request builder shared
// between calls once raced inside kiota's adapter.
func TestContractConcurrentCalls(t *testing.T) {
	srv, c := contract(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A UPN resolves through GET /users?$filter on the root builder.
			if _, err := c.ResolveUser(ctx, "kim.obrien@contoso.com"); err != nil {
				errs <- err
			}
			if _, err := c.Methods(ctx, kimID); err != nil {
				errs <- err
			}
			if _, err := c.DirectoryRoles(ctx, adminID); err != nil {
				errs <- err
			}
			if err := c.SetAccountEnabled(ctx, kimID, i%2 == 0); err != nil {
				errs <- fmt.Errorf("set account enabled: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, ok := srv.User(kimID); !ok {
		t.Fatal("user gone")
	}
}
