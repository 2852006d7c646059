#include "model/gguf_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <unordered_set>

#include "imp/error.h"
#include "model/display_text.h"
#include "model/ggml_types.h"
#include "model/gguf_parser.h"
#include "model/host_budget.h"
#include "model/hparam_bounds.h"

namespace imp {

namespace {

using namespace gguf;

std::string printable_magic(const uint8_t* m) {
    std::string s;
    char buf[8];
    for (int i = 0; i < 4; ++i) {
        if (m[i] >= 0x20 && m[i] < 0x7f) {
            s += char(m[i]);
        } else {
            std::snprintf(buf, sizeof buf, "\\x%02x", m[i]);
            s += buf;
        }
    }
    return s;
}

}  // namespace

GgufSource::GgufSource(std::shared_ptr<MappedFile> file, int part) : file_(std::move(file)) {
    const std::string& path = file_->path();
    meta_.source = path;
    Parser in(*file_);
    const uint64_t fsize = file_->size();

    // ---- header
    if (fsize < 4) in.fail("file of " + std::to_string(fsize) + " bytes is too small to be a GGUF file");
    if (std::memcmp(file_->data(), "GGUF", 4) != 0)
        in.fail("bad magic '" + printable_magic(file_->data()) + "', expected 'GGUF'");
    (void)in.get<uint32_t>("magic");
    version_ = in.get<uint32_t>("version", "the GGUF header");
    if (version_ == 0) in.fail("GGUF version 0 is invalid");
    if ((version_ & 0xFFFFu) == 0) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "0x%08x", version_);
        in.fail(std::string("big-endian GGUF file (version field ") + buf +
                "); only little-endian files are supported");
    }
    if (version_ == 1) in.fail("GGUF version 1 is no longer supported; re-convert the model to GGUF v3");
    if (version_ > 3)
        in.fail("GGUF version " + std::to_string(version_) + " is newer than this reader (supports 2 and 3)");
    const uint64_t n_tensors = in.get<uint64_t>("tensor count", "the GGUF header");
    const uint64_t n_kv = in.get<uint64_t>("metadata key/value count", "the GGUF header");
    if (n_tensors > in.left() / kMinTensorInfoBytes)
        in.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(in.left()) +
                " bytes left in the file");
    if (n_kv > in.left() / kMinKvBytes)
        in.fail("metadata key/value count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(in.left()) +
                " bytes left in the file");
    if (n_tensors > kMaxTensors)
        in.fail("tensor count " + std::to_string(n_tensors) + " exceeds imp's limit of " + std::to_string(kMaxTensors));
    if (n_kv > kMaxKeys)
        in.fail("metadata key/value count " + std::to_string(n_kv) + " exceeds imp's limit of " +
                std::to_string(kMaxKeys));

    // ---- host memory: what the metadata and the tensor table will take, before any of it is allocated
    {
        const uint64_t start = in.pos();
        uint64_t bytes = 0, entries = 0;
        for (; entries < n_kv && in.left() >= kMinKvBytes; ++entries) {
            const uint64_t key_len = in.get<uint64_t>("key length");
            if (key_len > in.left() || in.left() - key_len < 4) break;
            in.skip(key_len);
            bytes += 192 + key_len;  // the key and its map node
            if (!in.skim(in.get<uint32_t>("value type"), bytes)) break;
        }
        // Each tensor: its TensorInfo, name (<= 64 bytes) in the table, the name set and the name index, its file path.
        bytes += n_tensors * (sizeof(TensorInfo) + 3 * (kMaxNameBytes + 64) + path.size() + 64);
        in.seek(start);
        check_host_budget(path, "reading the metadata (" + std::to_string(entries) + " keys) and tensor table (" +
                          std::to_string(n_tensors) + " tensors)", bytes, kHostMetadataCap);
    }

    // ---- metadata
    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string subject = "metadata entry #" + std::to_string(i);
        std::string key = in.str("metadata key", subject, kMaxKeyBytes);
        if (key.empty()) in.fail(subject + " has an empty key");
        if (meta_.has(key)) in.fail("duplicate metadata key " + sq(key));
        subject = "metadata key " + sq(key);
        uint32_t type = in.get<uint32_t>("value type", subject);
        MetaValue v = in.value(type, key, subject);
        meta_.set(key, std::move(v));
    }
    if (const MetaValue* a = meta_.find("general.alignment")) {
        if (a->type != "u32") in.fail("general.alignment must be a u32, found " + a->type);
        uint64_t al = std::get<uint64_t>(a->v);
        if (al == 0) in.fail("general.alignment is 0");
        if ((al & (al - 1)) != 0) in.fail("general.alignment " + std::to_string(al) + " is not a power of two");
        alignment_ = al;
    }
    if (const MetaValue* a = meta_.find("general.architecture")) {
        if (!a->is_string()) in.fail("general.architecture must be a string, found " + a->type);
        arch_ = std::get<std::string>(a->v);
    }

    // ---- tensor infos
    if (n_tensors > in.left() / kMinTensorInfoBytes)
        in.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(in.left()) +
                " bytes left after the metadata");
    tensors_.reserve(size_t(n_tensors));
    std::vector<uint64_t> rel_offset;
    rel_offset.reserve(size_t(n_tensors));
    std::unordered_set<std::string> names;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        TensorInfo t;
        t.name = in.str("tensor name", "tensor info #" + std::to_string(i), kMaxNameBytes);
        if (!names.insert(t.name).second) in.fail("duplicate tensor name " + sq(t.name));
        const std::string subject = "tensor " + sq(t.name);
        uint32_t n_dims = in.get<uint32_t>("n_dims", subject);
        if (n_dims > kMaxDims)
            in.fail(subject + " has " + std::to_string(n_dims) + " dimensions (GGUF allows at most 4)");
        uint64_t ne[kMaxDims] = {1, 1, 1, 1};
        for (uint32_t j = 0; j < n_dims; ++j) {
            ne[j] = in.get<uint64_t>("dimension", subject);
            if (ne[j] == 0) in.fail(subject + " has a zero-sized dimension ne[" + std::to_string(j) + "]");
            if (ne[j] > uint64_t(INT64_MAX))
                in.fail(subject + " dimension ne[" + std::to_string(j) + "] = " + std::to_string(ne[j]) +
                        " is out of range (negative as int64)");
        }
        t.ggml_type = in.get<uint32_t>("ggml type", subject);
        uint64_t off = in.get<uint64_t>("data offset", subject);
        const ggml::TypeInfo* ti = ggml::type_info(t.ggml_type);
        if (!ti) in.fail(subject + " has unknown ggml type " + std::to_string(t.ggml_type));
        t.type = ti->name;
        const std::string count_what = path + ": " + subject + " element count";
        uint64_t numel = 1;
        for (uint32_t j = 0; j < kMaxDims; ++j) numel = checked_mul(numel, ne[j], count_what.c_str());
        if (numel > uint64_t(INT64_MAX))
            in.fail(subject + " has " + std::to_string(numel) + " elements, more than int64 can count");
        if (ne[0] % ti->block_elems != 0)
            in.fail(subject + ": ne[0] = " + std::to_string(ne[0]) + " is not a multiple of the " + ti->name +
                    " block size " + std::to_string(ti->block_elems));
        const std::string bytes_what = path + ": " + subject + " byte size";
        t.nbytes = checked_mul(numel / ti->block_elems, ti->block_bytes, bytes_what.c_str());
        if (off % alignment_ != 0)
            in.fail(subject + " data offset " + std::to_string(off) + " is not a multiple of the alignment " +
                    std::to_string(alignment_));
        for (uint32_t j = n_dims; j-- > 0;) t.shape.push_back(int64_t(ne[j]));  // ggml ne order -> outermost first
        t.file = path;
        tensors_.push_back(std::move(t));
        rel_offset.push_back(off);
    }

    // ---- data section: starts at the next multiple of the alignment after the tensor infos
    data_offset_ = in.pos();
    if (n_tensors > 0) {
        uint64_t pad = (alignment_ - data_offset_ % alignment_) % alignment_;
        data_offset_ = checked_add(data_offset_, pad, (path + ": data section start").c_str());
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
        TensorInfo& t = tensors_[i];
        const std::string what = path + ": tensor " + sq(t.name) + " data offset";
        uint64_t begin = checked_add(data_offset_, rel_offset[i], what.c_str());
        uint64_t end = checked_add(begin, t.nbytes, what.c_str());
        if (end > fsize)
            in.fail("tensor " + sq(t.name) + " data [" + std::to_string(begin) + ", " + std::to_string(end) +
                    ") runs past the end of the file (" + std::to_string(fsize) + " bytes)");
        t.file_offset = begin;
        t.data = file_->data() + begin;
    }
    std::vector<size_t> order(tensors_.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].file_offset < tensors_[b].file_offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const TensorInfo& a = tensors_[order[k - 1]];
        const TensorInfo& b = tensors_[order[k]];
        if (a.file_offset + a.nbytes > b.file_offset)
            in.fail("tensors " + sq(a.name) + " and " + sq(b.name) + " overlap (data at " +
                    std::to_string(a.file_offset) + "+" + std::to_string(a.nbytes) + " and " +
                    std::to_string(b.file_offset) + ")");
    }
    const MetaValue* no = meta_.find("split.no");
    const MetaValue* count = meta_.find("split.count");
    if (part > 0) {  // one part of a split GGUF, checked against the first part by join_parts
        if (!no || !count) in.fail("has no split.no / split.count keys, so it is not a part of a split GGUF");
        return;
    }
    const int64_t n_parts = count ? in_file(path, [&] { return count->as_int("split.count"); }) : 1;
    if (n_parts < 1 || n_parts > 9999) in.fail("split.count = " + std::to_string(n_parts) + " is out of range [1, 9999]");
    if (const int64_t k = no ? in_file(path, [&] { return no->as_int("split.no"); }) : 0; k != 0)
        in.fail("is part " + std::to_string(k + 1) + " of " + std::to_string(n_parts) +
                " of a split GGUF; open its first part (<name>-00001-of-" + std::to_string(n_parts) + ".gguf)");
    if (n_parts > 1) join_parts(n_parts);
    build_name_index();
    check_hparam_bounds(path, meta_, tensors_, true);
}

uint64_t GgufSource::file_bytes() const {
    uint64_t n = file_->size();
    for (const auto& p : parts_) n += p->file_bytes();
    return n;
}

void GgufSource::join_parts(int64_t count) {
    const std::string& path = file_->path();
    char suffix[40];
    std::snprintf(suffix, sizeof suffix, "-%05d-of-%05d.gguf", 1, int(count));
    const size_t sl = std::strlen(suffix);
    if (path.size() <= sl || path.compare(path.size() - sl, sl, suffix) != 0)
        throw Error(path + ": split.count = " + std::to_string(count) + ", but the file name does not end in '" +
                    suffix + "', so its other parts cannot be found (llama.cpp's gguf-split names them so)");
    const std::string prefix = path.substr(0, path.size() - sl);
    std::unordered_set<std::string> names;
    for (const TensorInfo& t : tensors_) names.insert(t.name);
    for (int64_t k = 1; k < count; ++k) {
        std::snprintf(suffix, sizeof suffix, "-%05d-of-%05d.gguf", int(k + 1), int(count));
        const std::string part_path = prefix + suffix;
        auto part = std::make_unique<GgufSource>(MappedFile::open(part_path), int(k));
        const int64_t no = in_file(part_path, [&] { return part->meta_.get_int("split.no"); });
        const int64_t n = in_file(part_path, [&] { return part->meta_.get_int("split.count"); });
        if (no != k || n != count)
            throw Error(part_path + ": split.no = " + std::to_string(no) + ", split.count = " + std::to_string(n) +
                        "; expected " + std::to_string(k) + " and " + std::to_string(count) + " for part " +
                        std::to_string(k + 1) + " of " + path);
        for (const TensorInfo& t : part->tensors_) {
            if (!names.insert(t.name).second)
                throw Error(part_path + ": tensor " + sq(t.name) + " is also in an earlier part of " + path);
            tensors_.push_back(t);
        }
        parts_.push_back(std::move(part));
    }
    if (const MetaValue* tc = meta_.find("split.tensors.count")) {
        const int64_t want = in_file(path, [&] { return tc->as_int("split.tensors.count"); });
        if (want != int64_t(tensors_.size()))
            throw Error(path + ": split.tensors.count = " + std::to_string(want) + ", but its " +
                        std::to_string(count) + " parts hold " + std::to_string(tensors_.size()) + " tensors");
    }
}

std::unique_ptr<ModelSource> open_gguf(const std::string& path) {
    return std::make_unique<GgufSource>(MappedFile::open(path));
}

}  // namespace imp
