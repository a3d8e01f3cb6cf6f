package chathub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// ErrMalformedJWT is returned by TokenExpiry for anything that is not a JWS compact
// serialization with a JSON object payload and a numeric exp (when exp is present).
var ErrMalformedJWT = errors.New("not a well-formed JWT")

// TokenExpiry reads the exp claim of a JWT without verifying it. A token without exp
// yields the zero time and no error. Error texts never contain the token.
func TokenExpiry(token string) (time.Time, error) {
	claims, err := jwtClaims(token)
	if err != nil {
		return time.Time{}, err
	}
	raw, ok := claims["exp"]
	if !ok || raw == nil {
		return time.Time{}, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, ErrMalformedJWT
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e11 {
		return time.Time{}, ErrMalformedJWT
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// jwtClaims decodes the payload of a compact JWS (header.payload.signature).
func jwtClaims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, ErrMalformedJWT
	}
	for _, p := range parts {
		if strings.ContainsFunc(p, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '=')
		}) {
			return nil, ErrMalformedJWT
		}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, ErrMalformedJWT
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, ErrMalformedJWT
	}
	return claims, nil
}
