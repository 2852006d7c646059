// `imp tokenize FILE|FOLDER [--prompt TEXT | --file F] [--ids] [--json]` and `imp detokenize FILE|FOLDER IDS...`:
// the model's tokenizer alone (no weights loaded), to compare with llama-tokenize and HF tokenizers.
#include <boost/program_options.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "imp/error.h"
#include "imp/model.h"
#include "model/display_text.h"
#include "model/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace po = boost::program_options;

namespace imp::cli {

namespace {

std::unique_ptr<Tokenizer> load(const std::string& path) {
    namespace fs = std::filesystem;
    if (!fs::exists(path)) throw Error(path + ": no such file or folder");
    // A folder with tokenizer.json needs no weights; anything else is opened as a model.
    if (fs::is_directory(path) && fs::exists(fs::path(path) / "tokenizer.json")) return Tokenizer::from_hf(path);
    if (fs::path(path).filename() == "tokenizer.json") return Tokenizer::from_hf(path);
    auto src = open_model(path);
    auto tok = Tokenizer::for_model(path, src->metadata());
    if (!tok) throw Error(path + ": no tokenizer (no tokenizer.ggml.* metadata, no tokenizer.json beside it)");
    return tok;
}

bool parse(const std::vector<std::string>& args, po::options_description& desc, po::variables_map& vm,
           const char* cmd) {
    po::positional_options_description pos;
    pos.add("model", 1);
    if (std::string(cmd) == "imp detokenize") pos.add("ids", -1);
    try {
        po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    } catch (const po::error& e) {
        throw Error(std::string(cmd) + ": " + e.what());
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return false;
    }
    if (!vm.count("model")) throw Error(std::string(cmd) + ": missing FILE|FOLDER (try " + cmd + " --help)");
    return true;
}

// Printable form of a piece: quotes and control bytes escaped, invalid UTF-8 as \xNN.
std::string shown(const std::string& s) {
    std::string o;
    for (size_t i = 0; i < s.size();) {
        int len = 1;
        const bool bad = unicode::decode_utf8(s, i, &len) == unicode::kReplacement && s.compare(i, 3, "\xEF\xBF\xBD");
        const unsigned char c = static_cast<unsigned char>(s[i]);
        char b[8];
        if (bad || len > 1) {
            if (bad) std::snprintf(b, sizeof b, "\\x%02X", c), o += b;
            else o.append(s, i, size_t(len));
            i += size_t(len);
            continue;
        }
        ++i;
        if (c == '\\' || c == '\'') o += '\\', o += char(c);
        else if (c == '\n') o += "\\n";
        else if (c == '\t') o += "\\t";
        else if (c == '\r') o += "\\r";
        else if (c < 0x20 || c == 0x7F) std::snprintf(b, sizeof b, "\\x%02X", c), o += b;
        else o += char(c);
    }
    return o;
}

// One id of `imp detokenize`: the whole word an integer (no "1.5", no "7x") in [0, n_vocab), none wrapped to 32 bits.
int32_t token_id(const std::string& w, int32_t n_vocab) {
    int64_t v = 0;
    const char* end = w.data() + w.size();
    const auto [p, ec] = std::from_chars(w.data(), end, v);
    if (p != end || (ec != std::errc() && ec != std::errc::result_out_of_range))
        throw Error("imp detokenize: " + imp::quoted(w) + " is not a token id");
    if (ec == std::errc::result_out_of_range || v < 0 || v >= n_vocab)
        throw Error("imp detokenize: token id " + display_text(w) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    return int32_t(v);
}

}  // namespace

int cmd_tokenize(const std::vector<std::string>& args) {
    po::options_description desc(
        "imp tokenize FILE|FOLDER [--prompt TEXT | --file F] [--ids] [--json]: token ids and pieces of a text");
    desc.add_options()("help,h", "show this help")("model", po::value<std::string>(), "GGUF file or HF folder")(
        "prompt,p", po::value<std::string>(), "text to tokenize")("file,f", po::value<std::string>(),
                                                                  "read the text from this file")(
        "ids", "print only the ids, as [1, 2, 3]")("json", "print a JSON array of {id, piece, text}")(
        "no-bos", "do not add BOS (or the tokenizer.json post-processor's tokens)")(
        "no-parse-special", "encode special-token text as plain text")(
        "chat", "the text as the user message of the model's chat template (special-token text in it stays text)");
    po::variables_map vm;
    if (!parse(args, desc, vm, "imp tokenize")) return 0;
    std::string text;
    if (vm.count("prompt") && vm.count("file")) throw Error("imp tokenize: give --prompt or --file, not both");
    if (vm.count("prompt")) {
        text = checked_utf8("--prompt", vm["prompt"].as<std::string>());  // as imp run --prompt
    } else if (vm.count("file")) {
        const std::string f = vm["file"].as<std::string>();
        text = read_regular_file(f);
    } else {
        throw Error("imp tokenize: give the text with --prompt TEXT or --file F");
    }
    auto tok = load(vm["model"].as<std::string>());
    const std::vector<int32_t> ids =
        vm.count("chat") ? tok->encode_chat({{"user", text}}, true)
                         : tok->encode(text, !vm.count("no-bos") && tok->add_bos(), !vm.count("no-parse-special"));
    if (vm.count("json")) {
        nlohmann::json a = nlohmann::json::array();
        for (int32_t id : ids)
            a.push_back({{"id", id}, {"piece", tok->token_piece(id)}, {"text", tok->token_text(id)}});
        std::puts(a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else if (vm.count("ids")) {
        std::string o = "[";
        for (size_t i = 0; i < ids.size(); ++i) o += (i ? ", " : "") + std::to_string(ids[i]);
        std::puts((o + "]").c_str());
    } else {
        for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, shown(tok->token_text(id)).c_str());
    }
    return 0;
}

int cmd_detokenize(const std::vector<std::string>& args) {
    po::options_description desc("imp detokenize FILE|FOLDER ID...: the text of token ids (commas allowed)");
    desc.add_options()("help,h", "show this help")("model", po::value<std::string>(), "GGUF file or HF folder")(
        "ids", po::value<std::vector<std::string>>()->multitoken(), "token ids");
    po::variables_map vm;
    if (!parse(args, desc, vm, "imp detokenize")) return 0;
    std::vector<std::string> words;
    if (vm.count("ids"))
        for (std::string a : vm["ids"].as<std::vector<std::string>>()) {
            for (char& c : a)
                if (c == ',' || c == '[' || c == ']') c = ' ';
            std::istringstream in(a);
            for (std::string w; in >> w;) words.push_back(w);
        }
    if (words.empty()) throw Error("imp detokenize: give the token ids: imp detokenize FILE|FOLDER ID...");
    auto tok = load(vm["model"].as<std::string>());
    std::vector<int32_t> ids;
    for (const std::string& w : words) ids.push_back(token_id(w, tok->n_vocab()));
    std::fputs(tok->decode(ids).c_str(), stdout);
    std::fputs("\n", stdout);
    return 0;
}

}  // namespace imp::cli
