//===- Summary.cpp - Human-readable artifact summary ------------*- C++ -*-===//
//
// `Artifact::summary`, the text `moec-run --info` prints: versions, model,
// targets, the CPU code variants, inputs and outputs, arena and weight sizes,
// precision per op class, the launch steps with their arguments, and the
// section table with each section's digest.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Artifact.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace moec::runtime {

namespace {

std::string bytesString(uint64_t bytes) {
  char buf[64];
  if (bytes < 1024)
    std::snprintf(buf, sizeof(buf), "%llu B", (unsigned long long)bytes);
  else if (bytes < (uint64_t(1) << 20))
    std::snprintf(buf, sizeof(buf), "%.1f KiB", bytes / 1024.0);
  else if (bytes < (uint64_t(1) << 30))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / 1048576.0);
  else
    std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / 1073741824.0);
  return buf;
}

std::string orNone(const std::string &s) { return s.empty() ? "(none)" : s; }

// The CPU code variants and the one this host runs (the executor makes the
// same choice, CpuExecutor::create).
void summarizeCpuCode(const Artifact &artifact, std::ostream &os) {
  std::vector<CpuCodeVariant> variants =
      getCpuCodeVariants(artifact.manifest());
  if (variants.empty()) {
    if (artifact.findSection("cpu.so"))
      os << "cpu code:  cpu.so (one variant; the CPU it needs is not "
            "recorded)\n";
    return;
  }
  os << "cpu code:  ";
  for (size_t i = 0; i < variants.size(); ++i)
    os << (i ? ", " : "") << variants[i].name << " (" << variants[i].cpu << ", "
       << variants[i].features.size() << " features)";
  StatusOr<HostCpuFeatures> host = getHostCpuFeatures();
  StatusOr<size_t> chosen =
      host.isOk() ? selectCpuCodeVariant(variants, *host) : host.status();
  if (chosen.isOk())
    os << "\n           " << host->describe() << " runs "
       << variants[*chosen].name << "\n";
  else
    os << "\n           none runs: " << chosen.status().message() << "\n";
}

// The generation facts and the embedded checkpoint files.
void summarizeGeneration(const Artifact &artifact, std::ostream &os) {
  if (const manifest::Generation *g = artifact.generation()) {
    os << "generation: eos_token_ids [";
    const auto &eos = *g->eos_token_ids();
    for (uint32_t i = 0; i < eos.size(); ++i)
      os << (i ? ", " : "") << eos[i];
    os << "]";
    if (g->bos_token_id())
      os << ", bos_token_id " << *g->bos_token_id();
    if (g->pad_token_id())
      os << ", pad_token_id " << *g->pad_token_id();
    if (g->do_sample())
      os << ", do_sample " << (*g->do_sample() ? "true" : "false");
    if (g->temperature())
      os << ", temperature " << *g->temperature();
    if (g->top_k())
      os << ", top_k " << *g->top_k();
    if (g->top_p())
      os << ", top_p " << *g->top_p();
    if (g->repetition_penalty())
      os << ", repetition_penalty " << *g->repetition_penalty();
    os << "\n";
  }
  std::vector<std::string> files = artifact.embeddedFileNames();
  if (files.empty())
    return;
  os << "files:     ";
  for (size_t i = 0; i < files.size(); ++i)
    os << (i ? ", " : "") << files[i] << " ("
       << bytesString(artifact.embeddedFile(files[i]).size) << ")";
  os << "\n";
}

} // namespace

std::string Artifact::summary() const {
  const manifest::Manifest &m = *manifest_;
  std::ostringstream os;
  bool isSigned = std::any_of(signature_.begin(), signature_.end(),
                              [](uint8_t b) { return b != 0; });
  os << "artifact:  " << path_ << " (format " << major_ << "." << minor_ << ", "
     << bytesString(size_) << ", meta sha256 " << toHex(metaDigest_)
     << (isSigned ? ", signed" : "") << ")\n";
  os << "signed:    ";
  switch (signatureCheck_) {
  case SignatureCheck::kUnsigned:
    os << "no\n";
    break;
  case SignatureCheck::kVerified:
    os << "by " << toHex(signerPublicKey_.data(), kPublicKeySize)
       << " (verified)\n";
    break;
  case SignatureCheck::kInvalid:
    os << "by " << toHex(signerPublicKey_.data(), kPublicKeySize)
       << " (SIGNATURE DOES NOT VERIFY)\n";
    break;
  case SignatureCheck::kUnchecked:
    os << "by " << toHex(signerPublicKey_.data(), kPublicKeySize)
       << " (not checked: Ed25519 is unavailable)\n";
    break;
  }
  os << "compiler:  " << orNone(m.compiler_version()->str());
  if (m.nvrtc_version()->size())
    os << ", nvrtc " << text(m.nvrtc_version());
  os << "\nmodel:     " << orNone(m.model_type()->str());
  if (m.source()->size())
    os << " from " << text(m.source());
  os << "\ntargets:   ";
  const auto &targets = *m.targets();
  for (uint32_t i = 0; i < targets.size(); ++i)
    os << (i ? ", " : "") << text(targets[i]);
  os << (targets.size() ? "" : "(none)") << "\n";
  summarizeCpuCode(*this, os);
  os << "tokens:    at most " << m.max_tokens() << " per run\n";
  os << "arena:     " << bytesString(m.arena_bytes()) << " in "
     << m.buffers()->size() << " buffers\n";

  uint64_t weightBytes = 0;
  for (const manifest::Weight *w : *m.weights())
    weightBytes += w->bytes();
  os << "weights:   " << m.weights()->size() << " tensors, "
     << bytesString(weightBytes);
  if (m.source_weight_bytes())
    os << " (checkpoint " << bytesString(m.source_weight_bytes()) << ")";
  if (m.weights_device_filled())
    os << ", not stored: filled by the runtime from seed "
       << m.weights_fill_seed();
  os << "\n";

  // CUDA: the code sections and the launches.
  uint32_t launches = 0;
  for (const manifest::Step *s : *m.steps())
    launches += s->cuda()->size();
  std::string code;
  for (const SectionInfo &s : sections_)
    if (s.name == "kernels.cu" || s.name.rfind("cubin.", 0) == 0)
      code += (code.empty() ? "" : ", ") + s.name + " (" + bytesString(s.size) +
              ")";
  if (launches || !code.empty())
    os << "cuda:      " << launches << " launches in " << m.steps()->size()
       << " steps, workspace " << bytesString(m.cuda_workspace_bytes())
       << ", code " << (code.empty() ? std::string("(none)") : code) << "\n";

  auto tensors =
      [&](const char *title,
          const flatbuffers::Vector<flatbuffers::Offset<manifest::TensorSpec>>
              &list) {
        os << title << "\n";
        for (const manifest::TensorSpec *t : list) {
          os << "  " << text(t->name()) << ": " << dtypeName(t->dtype()) << " "
             << shapeString(*t->shape()) << " in buffer " << t->buffer();
          if (t->index_bound())
            os << ", values in [0, " << t->index_bound() << ")";
          os << "\n";
        }
      };
  tensors("inputs:", *m.inputs());
  tensors("outputs:", *m.outputs());
  if (const manifest::KvCache *c = m.kv_cache()) {
    uint64_t pageBytes = 0;
    std::string dtypes;
    for (const manifest::KvCacheTensor *t : *c->tensors()) {
      pageBytes += kvCacheTensorPageBytes(*t);
      if (dtypes.find(dtypeName(t->dtype())) == std::string::npos)
        dtypes +=
            (dtypes.empty() ? "" : ",") + std::string(dtypeName(t->dtype()));
    }
    os << "kv cache:  " << c->tensors()->size() << " " << dtypes
       << " tensors, pages of " << c->page_tokens() << " positions ("
       << bytesString(pageBytes) << " per page, "
       << bytesString(pageBytes / uint64_t(c->page_tokens()))
       << " per position), " << c->max_sequences() << " sequences per step, "
       << c->max_pages() * c->page_tokens() << " positions per sequence\n";
  }

  if (m.precision()->size()) {
    os << "precision:";
    for (const manifest::PrecisionEntry *p : *m.precision())
      os << " " << text(p->op_class()) << "=" << precisionName(p->precision());
    os << "\n";
  }

  const auto &steps = *m.steps();
  os << "steps:     " << steps.size() << "\n";
  for (uint32_t i = 0; i < steps.size(); ++i) {
    const manifest::Step &s = *steps[i];
    os << "  " << i << ": " << text(s.kernel()) << "(";
    const auto &args = *s.args();
    for (uint32_t a = 0; a < args.size(); ++a) {
      const manifest::Argument &arg = *args.Get(a);
      os << (a ? ", " : "");
      if (arg.kind() == manifest::ArgumentKind::BUFFER)
        os << text(findBuffer(arg.id())->name());
      else if (arg.kind() == manifest::ArgumentKind::KV_CACHE)
        os << "%" << text(m.kv_cache()->tensors()->Get(arg.id())->name());
      else
        os << "@" << text(findWeight(arg.id())->name());
    }
    os << ")";
    if (s.params()->size()) {
      os << " params [";
      for (uint32_t p = 0; p < s.params()->size(); ++p)
        os << (p ? ", " : "") << s.params()->Get(p);
      os << "]";
    }
    if (s.selected_rows())
      os << " on the selected rows";
    if (s.op()->size())
      os << "  // " << text(s.op());
    os << "\n";
    for (const manifest::CudaLaunch *l : *s.cuda()) {
      os << "       cuda " << text(l->kernel()) << " grid [";
      const auto &grid = *l->grid();
      for (uint32_t d = 0; d < grid.size(); ++d) {
        const manifest::GridExtent &g = *grid.Get(d);
        os << (d ? ", " : "");
        if (g.per_token())
          os << "ceil(T*" << g.per_token() << "/" << g.divisor() << ")"
             << (g.constant() ? "+" : "");
        if (g.constant() || !g.per_token())
          os << g.constant();
      }
      os << "] block [";
      for (uint32_t d = 0; d < l->block()->size(); ++d)
        os << (d ? ", " : "") << l->block()->Get(d);
      os << "]";
      if (l->shared_bytes())
        os << " shared " << l->shared_bytes();
      if (l->tensor_maps()->size())
        os << " tensor maps " << l->tensor_maps()->size();
      os << "\n";
    }
  }

  summarizeGeneration(*this, os);
  os << "sections:\n";
  for (const SectionInfo &s : sections_) {
    os << "  " << s.name << ": offset " << s.offset << ", "
       << bytesString(s.size) << ", align " << s.alignment;
    if (!s.digest)
      os << ", covered by the meta digest";
    else if (s.digest->block_size())
      os << ", sha256 of " << s.digest->blocks()->size() << " blocks of "
         << bytesString(s.digest->block_size()) << " ("
         << weightsBlocksVerified() << " verified)";
    else
      os << ", sha256 " << toHex(fromHash(*s.digest->sha256()));
    os << (s.known ? "" : " (unknown kind, skipped)") << "\n";
  }
  return os.str();
}

} // namespace moec::runtime
