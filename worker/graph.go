package worker

import (
	"context"

	"github.com/authflow/authflow/graphclient"
)

// Graph is what the worker needs of Microsoft Graph; *graphclient.Client
// implements it. Every call is one logical operation that the worker wraps
// in its own retry policy.
type Graph interface {
	ResolveUser(ctx context.Context, ref string) (graphclient.User, error)
	Methods(ctx context.Context, userID string) ([]graphclient.Method, error)
	AddPhone(ctx context.Context, userID string, t graphclient.PhoneType, number string) (graphclient.Method, error)
	UpdatePhone(ctx context.Context, userID, methodID, number string) error
	EnableSMSSignIn(ctx context.Context, userID, methodID string) error
	DisableSMSSignIn(ctx context.Context, userID, methodID string) error
	AddEmail(ctx context.Context, userID, address string) (graphclient.Method, error)
	UpdateEmail(ctx context.Context, userID, methodID, address string) error
	CreateTAP(ctx context.Context, userID string, req graphclient.TAPRequest) (graphclient.TAP, error)
	DeleteMethod(ctx context.Context, userID string, kind graphclient.Kind, methodID string) error
	ResetPassword(ctx context.Context, userID, newPassword string) (generated string, err error)
	SetPassword(ctx context.Context, userID, password string, forceChange bool) error
	RevokeSessions(ctx context.Context, userID string) error
	SetAccountEnabled(ctx context.Context, userID string, enabled bool) error
	DirectoryRoles(ctx context.Context, userID string) ([]string, error)
	CreateQRCodePin(ctx context.Context, userID string, req graphclient.QRCodePinRequest) (graphclient.QRCodePin, error)
	QRCodePinMethod(ctx context.Context, userID string) (graphclient.Method, error)
	DeleteQRCodePin(ctx context.Context, userID string) error
	PasskeyCreationOptions(ctx context.Context, userID string) (graphclient.PasskeyCreationOptions, error)
	RegisterPasskey(ctx context.Context, userID string, reg graphclient.PasskeyRegistration) (graphclient.Method, error)
}

var _ Graph = (*graphclient.Client)(nil)
