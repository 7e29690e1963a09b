#include "sidecar.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace trtnet {

namespace {

constexpr int kMaxDepth = 64;              // nesting a sidecar never needs; bounds the recursion
constexpr size_t kMaxSidecarBytes = 16u << 20;  // a sidecar is kilobytes

class Parser {
public:
    explicit Parser(std::string const& text) : s_(text) {}

    Json document() {
        Json value = parse_value(0);
        skip_space();
        if (pos_ != s_.size()) fail("unexpected text after the JSON value");
        return value;
    }

private:
    [[noreturn]] void fail(std::string const& what) const {
        throw std::invalid_argument(what + " at byte " + std::to_string(pos_));
    }
    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
    }
    bool consume(char const* word) {
        size_t n = std::char_traits<char>::length(word);
        if (s_.compare(pos_, n, word) != 0) return false;
        pos_ += n;
        return true;
    }
    Json parse_value(int depth) {
        if (depth > kMaxDepth) fail("JSON nested too deeply");
        skip_space();
        if (pos_ >= s_.size()) fail("unexpected end of the file");
        Json v;
        char c = s_[pos_];
        if (c == '{') {
            v.kind = Json::Kind::kObject;
            ++pos_;
            skip_space();
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return v;
            }
            for (;;) {
                skip_space();
                if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
                std::string key = parse_string();
                skip_space();
                if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':'");
                ++pos_;
                v.object[key] = parse_value(depth + 1);
                skip_space();
                if (pos_ < s_.size() && s_[pos_] == ',') {
                    ++pos_;
                    continue;
                }
                if (pos_ < s_.size() && s_[pos_] == '}') {
                    ++pos_;
                    return v;
                }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            v.kind = Json::Kind::kArray;
            ++pos_;
            skip_space();
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return v;
            }
            for (;;) {
                v.array.push_back(parse_value(depth + 1));
                skip_space();
                if (pos_ < s_.size() && s_[pos_] == ',') {
                    ++pos_;
                    continue;
                }
                if (pos_ < s_.size() && s_[pos_] == ']') {
                    ++pos_;
                    return v;
                }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            v.kind = Json::Kind::kString;
            v.string = parse_string();
            return v;
        }
        if (consume("true")) {
            v.kind = Json::Kind::kBool;
            v.boolean = true;
            return v;
        }
        if (consume("false")) {
            v.kind = Json::Kind::kBool;
            return v;
        }
        if (consume("null")) return v;
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = pos_;
            if (s_[pos_] == '-') ++pos_;
            while (pos_ < s_.size() && std::string("0123456789.eE+-").find(s_[pos_]) != std::string::npos) ++pos_;
            std::string number = s_.substr(start, pos_ - start);
            char* end = nullptr;
            v.kind = Json::Kind::kNumber;
            v.number = std::strtod(number.c_str(), &end);
            if (end == nullptr || *end != '\0') fail("malformed number '" + number + "'");
            return v;
        }
        fail(std::string("unexpected character '") + c + "'");
    }
    static void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }
    unsigned hex4() {
        if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f') v |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= unsigned(h - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }
    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        while (pos_ < s_.size()) {
            char c = s_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) break;
            char e = s_[pos_++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                unsigned cp = hex4();
                if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 1 < s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
                    pos_ += 2;
                    unsigned low = hex4();
                    if (low < 0xDC00 || low > 0xDFFF) fail("bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                append_utf8(out, cp);
                break;
            }
            default: fail(std::string("bad escape '\\") + e + "'");
            }
        }
        fail("unterminated string");
    }

    std::string const& s_;
    size_t pos_ = 0;
};

std::string text_of(Json const* v) {
    if (v == nullptr) return "";
    if (v->kind == Json::Kind::kString) return v->string;
    if (v->kind == Json::Kind::kNumber) {
        std::ostringstream out;
        out << v->number;
        return out.str();
    }
    return "";
}

}  // namespace

Json Json::parse(std::string const& text) { return Parser(text).document(); }

Json const* Json::get(std::string const& key) const {
    if (kind != Kind::kObject) return nullptr;
    auto it = object.find(key);
    return it == object.end() ? nullptr : &it->second;
}

int32_t parse_tensorrt_version(std::string const& text) {
    int major = -1, minor = 0, patch = 0;
    char tail = 0;
    int n = std::sscanf(text.c_str(), "%d.%d.%d%c", &major, &minor, &patch, &tail);
    if (n < 1 || major < 0 || minor < 0 || minor > 99 || patch < 0 || patch > 99 || major > 99) return -1;
    return major * 10000 + minor * 100 + patch;
}

std::string format_tensorrt_version(int32_t version) {
    return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
           std::to_string(version % 100);
}

void read_sidecar(std::string const& path, EngineInfo& info) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        throw Error(ErrorCode::kSidecar, "no sidecar " + path + " next to the engine (class names, config, TensorRT "
                                         "version); python -m trtnet.build writes it beside every engine: copy it "
                                         "with the engine, or set Options::sidecar");
    }
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (text.size() > kMaxSidecarBytes) throw Error(ErrorCode::kSidecar, "sidecar " + path + " is too large to be one");
    Json doc;
    try {
        doc = Json::parse(text);
    } catch (std::invalid_argument const& e) {
        throw Error(ErrorCode::kSidecar, "sidecar " + path + " is not valid JSON: " + e.what());
    }
    if (doc.kind != Json::Kind::kObject) throw Error(ErrorCode::kSidecar, "sidecar " + path + " is not a JSON object");

    Json const* config = doc.get("config");
    info.config = config != nullptr && config->kind == Json::Kind::kObject ? text_of(config->get("name")) : text_of(config);

    std::string role = text_of(doc.get("network"));  // trtnet/builder/sidecar.py: "keyframe" | "nonkeyframe"
    if (role.empty()) role = text_of(doc.get("role"));
    if (role == "nonkeyframe" || role == "non-keyframe" || role == "nonkey") role = "nonkeyframe";
    else if (role == "keyframe" || role == "key") role = "keyframe";
    else if (!role.empty()) throw Error(ErrorCode::kSidecar, "sidecar " + path + ": unknown role '" + role + "'");
    info.role = role;

    Json const* trt = doc.get("tensorrt_version");
    if (trt == nullptr && doc.get("tensorrt") != nullptr) trt = doc.get("tensorrt")->get("version");
    info.tensorrt_version = text_of(trt);  // "unknown" when the builder could not tell: not checked then

    Json const* gpu = doc.get("gpu");
    Json const* cc = gpu != nullptr ? gpu->get("compute_capability") : doc.get("compute_capability");
    if (cc != nullptr && cc->kind == Json::Kind::kArray && cc->array.size() == 2) {
        info.gpu = text_of(&cc->array[0]) + "." + text_of(&cc->array[1]);
    } else {
        info.gpu = text_of(cc);
    }

    Json const* engine = doc.get("engine");
    Json const* bytes = engine != nullptr ? engine->get("bytes") : nullptr;
    info.engine_bytes = bytes != nullptr && bytes->kind == Json::Kind::kNumber ? int64_t(bytes->number) : -1;
    info.io.clear();
    if (Json const* io = doc.get("io"); io != nullptr && io->kind == Json::Kind::kArray) {
        for (Json const& t : io->array) {
            if (t.get("name") == nullptr || t.get("name")->kind != Json::Kind::kString) {
                throw Error(ErrorCode::kSidecar, "sidecar " + path + ": an io entry has no name");
            }
            info.io.push_back(t.get("name")->string);
        }
    }

    Json const* plugins = doc.get("plugin_library");
    info.plugin_library = plugins != nullptr && plugins->kind == Json::Kind::kObject ? text_of(plugins->get("path"))
                                                                                      : text_of(plugins);

    // trtnet/builder/sidecar.py tensorrt_plugins(): e.g. ["ModulatedDeformConv2d"] (YOLACT++);
    // absent in sidecars written before it (segmenter.cpp then reads the plan).
    info.tensorrt_plugins.clear();
    if (Json const* trt_plugins = doc.get("tensorrt_plugins");
        trt_plugins != nullptr && trt_plugins->kind != Json::Kind::kNull) {
        if (trt_plugins->kind != Json::Kind::kArray) {
            throw Error(ErrorCode::kSidecar, "sidecar " + path + ": tensorrt_plugins is not a list");
        }
        for (Json const& p : trt_plugins->array) {
            if (p.kind != Json::Kind::kString) {
                throw Error(ErrorCode::kSidecar, "sidecar " + path + ": tensorrt_plugins holds something other than names");
            }
            info.tensorrt_plugins.push_back(p.string);
        }
    }

    Json const* classes = doc.get("classes");
    if (classes == nullptr && config != nullptr) classes = config->get("class_names");
    info.classes.clear();
    if (classes != nullptr) {
        if (classes->kind != Json::Kind::kArray) throw Error(ErrorCode::kSidecar, "sidecar " + path + ": classes is not a list");
        for (Json const& c : classes->array) {
            if (c.kind != Json::Kind::kString) {
                throw Error(ErrorCode::kSidecar, "sidecar " + path + ": classes holds something other than names");
            }
            info.classes.push_back(c.string);
        }
    }
}

}  // namespace trtnet
