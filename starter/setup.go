package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tokenwarden/tokenwarden/workflows"
)

// searchAttribute is one attribute the workflow upserts, with the type it needs.
type searchAttribute struct {
	name string
	typ  enumspb.IndexedValueType
}

// searchAttributes are the attributes CredentialWorkflow publishes.
var searchAttributes = []searchAttribute{
	{workflows.SearchState.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{workflows.SearchProvider.GetName(), enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	{workflows.SearchExpiresAt.GetName(), enumspb.INDEXED_VALUE_TYPE_DATETIME},
}

// typeName renders INDEXED_VALUE_TYPE_DATETIME as "Datetime", the spelling of the
// temporal CLI's --search-attribute and --type flags.
func typeName(t enumspb.IndexedValueType) string { return t.String() }

func (a *app) setup(ctx context.Context, args []string) error {
	fs := a.newFlags("setup", "setup")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fail(exitBadInput, "setup takes no arguments, got %q", pos)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ns := a.cfg.TemporalNamespace

	existing, err := listSearchAttributes(ctx, c, ns)
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	var wrong []string
	for _, sa := range searchAttributes {
		got, ok := existing[sa.name]
		switch {
		case !ok:
			missing[sa.name] = sa.typ
		case got != sa.typ:
			wrong = append(wrong, fmt.Sprintf("%s is registered as %s, tokenwarden needs %s", sa.name, typeName(got), typeName(sa.typ)))
		}
	}
	if len(wrong) > 0 {
		return fail(exitFailure, "namespace %q: %s; a search attribute's type cannot be changed in place: "+
			"remove it (`temporal operator search-attribute delete --name NAME`) or use another namespace",
			ns, strings.Join(wrong, "; "))
	}
	if len(missing) > 0 {
		_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace:        ns,
			SearchAttributes: missing,
		})
		var exists *serviceerror.AlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return classifyServerError(err, "register search attributes on namespace %q", ns)
		}
		// Read back: another setup may have raced us, with other types.
		if existing, err = listSearchAttributes(ctx, c, ns); err != nil {
			return err
		}
	}
	for _, sa := range searchAttributes {
		got, ok := existing[sa.name]
		switch {
		case !ok:
			return fail(exitFailure, "namespace %q: %s is still not registered after adding it", ns, sa.name)
		case got != sa.typ:
			return fail(exitFailure, "namespace %q: %s is registered as %s, tokenwarden needs %s", ns, sa.name, typeName(got), typeName(sa.typ))
		}
		verb := "already registered"
		if _, added := missing[sa.name]; added {
			verb = "registered"
		}
		fmt.Fprintf(a.stdout, "%-15s %-8s %s\n", sa.name, typeName(sa.typ), verb)
	}
	fmt.Fprintf(a.stdout, "namespace %q is ready for tokenwarden\n", ns)
	return nil
}

// listSearchAttributes returns the namespace's custom search attributes by name.
func listSearchAttributes(ctx context.Context, c client.Client, ns string) (map[string]enumspb.IndexedValueType, error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		var notFound *serviceerror.NamespaceNotFound
		if errors.As(err, &notFound) {
			return nil, fail(exitFailure, "namespace %q does not exist: create it first (`temporal operator namespace create --namespace %s`)", ns, ns)
		}
		return nil, classifyServerError(err, "list search attributes of namespace %q", ns)
	}
	return resp.GetCustomAttributes(), nil
}
