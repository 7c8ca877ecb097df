//===- Summary.cpp - Human-readable artifact summary ------------*- C++ -*-===//
//
// `Artifact::summary`, the text `moec-run --info` prints: versions, model,
// targets, the CPU code variants, inputs and outputs, arena and weight sizes,
// precision per op class, the launch steps with their arguments, and the
// section table.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Artifact.h"

#include <cstdio>

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

} // namespace

std::string Artifact::summary() const {
  const manifest::Manifest &m = manifest_;
  std::ostringstream os;
  os << "artifact:  " << path_ << " (format " << major_ << "." << minor_ << ", "
     << bytesString(size_) << ", sha256 " << toHex(digest_) << ")\n";
  os << "compiler:  " << orNone(m.compiler_version());
  if (!m.nvrtc_version().empty())
    os << ", nvrtc " << m.nvrtc_version();
  os << "\nmodel:     " << orNone(m.model_type());
  if (!m.source().empty())
    os << " from " << m.source();
  os << "\ntargets:   ";
  for (int i = 0; i < m.targets_size(); ++i)
    os << (i ? ", " : "") << m.targets(i);
  os << (m.targets_size() ? "" : "(none)") << "\n";
  summarizeCpuCode(*this, os);
  os << "tokens:    at most " << m.max_tokens() << " per run\n";
  os << "arena:     " << bytesString(m.arena_bytes()) << " in "
     << m.buffers_size() << " buffers\n";

  uint64_t weightBytes = 0;
  for (const manifest::Weight &w : m.weights())
    weightBytes += w.bytes();
  os << "weights:   " << m.weights_size() << " tensors, "
     << bytesString(weightBytes);
  if (m.source_weight_bytes())
    os << " (checkpoint " << bytesString(m.source_weight_bytes()) << ")";
  if (m.weights_device_filled())
    os << ", not stored: filled by the runtime from seed "
       << m.weights_fill_seed();
  os << "\n";

  // CUDA: the code sections and the launches.
  int launches = 0;
  for (const manifest::Step &s : m.steps())
    launches += s.cuda_size();
  std::string code;
  for (const SectionInfo &s : sections_)
    if (s.name == "kernels.cu" || s.name.rfind("cubin.", 0) == 0)
      code += (code.empty() ? "" : ", ") + s.name + " (" + bytesString(s.size) +
              ")";
  if (launches || !code.empty())
    os << "cuda:      " << launches << " launches in " << m.steps_size()
       << " steps, workspace " << bytesString(m.cuda_workspace_bytes())
       << ", code " << (code.empty() ? std::string("(none)") : code) << "\n";

  auto tensors = [&](const char *title, const auto &list) {
    os << title << "\n";
    for (const manifest::TensorSpec &t : list) {
      os << "  " << t.name() << ": " << dtypeName(t.dtype()) << " "
         << shapeString(t.shape()) << " in buffer " << t.buffer();
      if (t.index_bound())
        os << ", values in [0, " << t.index_bound() << ")";
      os << "\n";
    }
  };
  tensors("inputs:", m.inputs());
  tensors("outputs:", m.outputs());

  if (m.precision_size()) {
    os << "precision:";
    for (const manifest::PrecisionEntry &p : m.precision())
      os << " " << p.op_class() << "=" << precisionName(p.precision());
    os << "\n";
  }

  os << "steps:     " << m.steps_size() << "\n";
  for (int i = 0; i < m.steps_size(); ++i) {
    const manifest::Step &s = m.steps(i);
    os << "  " << i << ": " << s.kernel() << "(";
    for (int a = 0; a < s.args_size(); ++a) {
      const manifest::Argument &arg = s.args(a);
      os << (a ? ", " : "");
      if (arg.ref_case() == manifest::Argument::kBuffer)
        os << findBuffer(arg.buffer())->name();
      else
        os << "@" << findWeight(arg.weight())->name();
    }
    os << ")";
    if (s.params_size()) {
      os << " params [";
      for (int p = 0; p < s.params_size(); ++p)
        os << (p ? ", " : "") << s.params(p);
      os << "]";
    }
    if (!s.op().empty())
      os << "  // " << s.op();
    os << "\n";
    for (const manifest::CudaLaunch &l : s.cuda()) {
      os << "       cuda " << l.kernel() << " grid [";
      for (int d = 0; d < l.grid_size(); ++d) {
        const manifest::GridExtent &g = l.grid(d);
        os << (d ? ", " : "");
        if (g.per_token())
          os << "ceil(T*" << g.per_token() << "/" << g.divisor() << ")"
             << (g.constant() ? "+" : "");
        if (g.constant() || !g.per_token())
          os << g.constant();
      }
      os << "] block [";
      for (int d = 0; d < l.block_size(); ++d)
        os << (d ? ", " : "") << l.block(d);
      os << "]";
      if (l.shared_bytes())
        os << " shared " << l.shared_bytes();
      if (l.tensor_maps_size())
        os << " tensor maps " << l.tensor_maps_size();
      os << "\n";
    }
  }

  os << "sections:\n";
  for (const SectionInfo &s : sections_) {
    char crc[16];
    std::snprintf(crc, sizeof(crc), "%08x", s.crc32);
    os << "  " << s.name << ": offset " << s.offset << ", "
       << bytesString(s.size) << ", align " << s.alignment << ", crc32 " << crc
       << (s.known ? "" : " (unknown kind, skipped)") << "\n";
  }
  return os.str();
}

} // namespace moec::runtime
