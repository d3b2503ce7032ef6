// Maintenance markers (maintenance/<id>): the state of a two-phase prune that
// a later prune run finishes. See docs/retention.md for the protocol and
// docs/format.md §13 for the byte layout.
//
// A marker names packs that prune found unused ("marked"): they are not
// deleted yet, because a backup that started before the marking may still
// reference them. While any marker exists, every reader of the repository
// treats its packs as *excluded*: no new blob is deduplicated against a copy
// that lives only in an excluded pack, so only backups that were already
// running can come to depend on marked packs. The marker records those
// backups (the lock holders present right after it was stored); once all of
// them are gone, a later prune re-reads every snapshot, keeps ("rescues")
// any marked pack a snapshot needs and deletes the rest.
//
// States, each written as a new file that supersedes (and then removes) the
// previous one:
//   pending  — packs listed, holders not yet recorded (prune was killed);
//   marked   — holders recorded: sweepable once they are all gone;
//   sweeping — decision taken: `packs` are deleted, `rescued` are indexed.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "repo/index.h"
#include "repo/repository.h"
#include "repo/timefmt.h"

namespace cairn::repo {

enum class MarkerState { kPending, kMarked, kSweeping };
const char* marker_state_name(MarkerState s);

struct Marker {
  std::string id;  // file name (hex SHA-256 of the stored bytes); empty until saved
  MarkerState state = MarkerState::kPending;
  Time time;  // when the packs were marked
  // Marked packs with the blobs the index placed in them at mark time (empty
  // for packs no index named: leftovers or packs of a backup still running).
  std::vector<PackContents> packs;
  std::vector<std::string> obsolete_index;  // index files replaced by prune's new index
  std::vector<std::string> waits_for;       // lock holders present after the marker was stored
  std::vector<PackContents> rescued;        // sweeping: packs a snapshot still needs
  std::string supersedes;                   // marker file this one replaces

  std::vector<Id> pack_ids() const;
};

core::Bytes encode_marker(const Marker& m);
core::Result<Marker> decode_marker(core::ByteView plain);

// Every marker in the repository. A marker that disappears while being read
// (a prune replaced or finished it) triggers a fresh listing, so the result is
// never missing a marker that existed throughout. Unreadable markers are an
// error (kCorruption naming the file): without them nobody knows which packs
// are about to go.
core::Result<std::vector<Marker>> list_markers(Repository& repo);
core::Result<std::string> save_marker(Repository& repo, Marker& m);

}  // namespace cairn::repo
