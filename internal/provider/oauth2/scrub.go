package oauth2provider

import "github.com/tokenwarden/tokenwarden/internal/provider/scrub"

// MaxDescriptionLen is the longest provider-supplied description kept in an error, in
// runes, after scrubbing.
const MaxDescriptionLen = scrub.MaxDescriptionLen

const maxCodeLen = scrub.MaxCodeLen

type scrubber = scrub.Scrubber

func newScrubber(secrets ...string) scrubber { return scrub.New(secrets...) }
