// strata's options as Abseil flags: --strata_<name> for every knob of the
// registry (alloc/options.h), generated from the same declarations.
//
// Link //alloc:flags into a program that uses Abseil flags. Each flag is
// applied to strata the moment Abseil sets it: absl::ParseCommandLine()
// applies the ones on the command line (and absl::SetFlag() a programmatic
// change) through the flag's OnUpdate callback, with the same parsing, range
// checks and messages as STRATA_<NAME>; the option then reports its source
// as "flag". A refused value leaves strata's previous value in force. An
// empty value means "not set" (the flags' default), so it changes nothing.
//
// This library is separate from the allocator so that strata's core never
// depends on Abseil's flag runtime, which allocates.
#ifndef STRATA_ALLOC_FLAGS_H_
#define STRATA_ALLOC_FLAGS_H_

namespace strata {

// Applies every non-empty --strata_* flag to strata again (for a program
// that changed options through the API after parsing and wants the command
// line to win). Returns the number of flags that were refused.
int ApplyFlags();

}  // namespace strata

#endif  // STRATA_ALLOC_FLAGS_H_
