#include "storage/rest/rest_backend.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "storage/curl_kit.h"
#include "storage/local_backend.h"

namespace cairn::storage {

struct RestBackend::Request {
  std::string method;  // GET, HEAD, PUT or DELETE
  std::string object;  // "config", "data/<id>", "locks/" (a listing)
  core::ByteView body;
  std::string range;  // "bytes=a-b" or ""
};

struct RestBackend::Response {
  long status = 0;
  core::Bytes body;
  std::map<std::string, std::string> headers;  // lower-case names
};

namespace {

using curl_kit::EasyPtr;
using curl_kit::HeaderList;
using curl_kit::on_read;
using curl_kit::parse_u64;
using curl_kit::UploadCursor;



bool is_retryable_http(long status) { return status >= 500 || status == 429; }


size_t on_header(char* data, size_t size, size_t n, void* user) {
  try {
    auto* headers = static_cast<std::map<std::string, std::string>*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
      headers->clear();
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
      value.remove_suffix(1);
    (*headers)[name] = std::string(value);
  } catch (...) {
    return 0;
  }
  return size * n;
}



// The server's {"error": "..."} message, for error texts.
std::string server_message(const core::Bytes& body) {
  auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string())
    return j["error"].get<std::string>();
  return {};
}

std::string object_of(const Handle& h) {
  if (h.type == FileType::kConfig) return "config";
  return std::string(type_dir(h.type)) + "/" + h.name;
}

}  // namespace

core::Result<RestOptions> RestOptions::from_location(const std::string& location) {
  if (!location.starts_with("rest:"))
    return core::invalid_argument("not a rest: location: " + location);
  std::string url = location.substr(5);
  if (!url.starts_with("http://") && !url.starts_with("https://"))
    return core::invalid_argument(
        "rest location must be rest:https://host[:port]/<service>, not '" + location + "'");
  size_t host_start = url.find("://") + 3;
  size_t slash = url.find('/', host_start);
  RestOptions o;
  o.endpoint = url.substr(0, slash);
  if (o.endpoint.size() == host_start)
    return core::invalid_argument("rest location has no host: " + location);
  std::string service = slash == std::string::npos ? "" : url.substr(slash + 1);
  while (!service.empty() && service.back() == '/') service.pop_back();
  bool valid = !service.empty() && service.size() <= 128 &&
               std::isalnum(static_cast<unsigned char>(service[0]));
  for (char c : service)
    valid &= std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  if (!valid)
    return core::invalid_argument(
        "rest location must name a service (letters, digits, '.', '_', "
        "'-'): rest:https://host[:port]/<service>, not '" +
        location + "'");
  o.service = service;
  // Retry budget overrides, mainly so tests against absent servers finish
  // quickly; unset or empty keeps the defaults.
  struct Knob {
    const char* name;
    int64_t min, max;
    std::function<void(int64_t)> set;
  };
  const Knob knobs[] = {
      {"CAIRN_REST_MAX_ATTEMPTS", 1, 100, [&](int64_t v) { o.max_attempts = static_cast<int>(v); }},
      {"CAIRN_REST_MAX_RETRY_SECONDS", 0, 3600,
       [&](int64_t v) { o.max_total_backoff = std::chrono::seconds(v); }},
  };
  for (const Knob& k : knobs) {
    const char* text = std::getenv(k.name);
    if (text == nullptr || *text == '\0') continue;
    int64_t v = 0;
    std::string_view t(text);
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || v < k.min || v > k.max) {
      return core::invalid_argument(std::string(k.name) + "='" + text +
                                    "' is not a whole number from " + std::to_string(k.min) +
                                    " to " + std::to_string(k.max));
    }
    k.set(v);
  }
  if (const char* t = std::getenv("CAIRN_TOKEN"); t != nullptr && *t != '\0') {
    o.token = t;
  } else if (const char* f = std::getenv("CAIRN_TOKEN_FILE"); f != nullptr && *f != '\0') {
    std::ifstream in(f);
    if (!in) return core::invalid_argument(std::string("cannot read CAIRN_TOKEN_FILE ") + f);
    std::getline(in, o.token);
    while (!o.token.empty() && std::isspace(static_cast<unsigned char>(o.token.back())))
      o.token.pop_back();
  }
  return o;
}

// DNS, TLS sessions and connections shared by every request of this backend.
struct RestBackend::Shared : curl_kit::Share {};

RestBackend::RestBackend(RestOptions options) : options_(std::move(options)) {
  curl_kit::global_init();
  shared_ = std::make_unique<Shared>();
}

RestBackend::~RestBackend() = default;

std::string RestBackend::location() const {
  return "rest:" + options_.endpoint + "/" + options_.service;
}

std::string RestBackend::url_of(const std::string& object) const {
  return options_.endpoint + "/api/v1/repo/" + options_.service + "/" + object;
}

core::Result<RestBackend::Response> RestBackend::perform_once(const Request& req) {
  const std::string what = "rest " + req.method + " " + location() + "/" + req.object;
  EasyPtr easy(curl_easy_init());
  if (!easy) return core::io_error(what + ": curl_easy_init failed");
  CURL* e = easy.get();
  HeaderList headers;
  bool ok = true;
  if (!options_.token.empty()) ok &= headers.append("Authorization: Bearer " + options_.token);
  if (!req.range.empty()) ok &= headers.append("Range: " + req.range);
  ok &= headers.append("Expect:");  // no 100-continue round trip
  if (!ok) return core::io_error(what + ": out of memory building headers");

  Response resp;
  char errbuf[CURL_ERROR_SIZE] = {0};
  UploadCursor cursor{req.body.data(), req.body.size()};
  const std::string url = url_of(req.object);
  curl_kit::set_transport(e, {url.c_str(), errbuf, shared_->share, headers.get(), options_.connect_timeout,
                              options_.stall_timeout, options_.insecure_tls, options_.ca_file});
  curl_kit::BodySink body_sink{e, &resp.body};
  curl_kit::receive_body(e, &body_sink);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &resp.headers);
  if (req.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, &on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &cursor);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    if (curl_kit::is_transient(rc)) return core::Status(core::Code::kTransient, what + ": " + detail);
    if (rc == CURLE_PEER_FAILED_VERIFICATION)
      return core::io_error(what + ": the server's TLS certificate is not trusted (" + detail +
                            "); for a private CA pass its certificate with --cacert FILE");
    return core::io_error(what + ": " + detail);
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
  // An answer cut short looks complete to libcurl without Content-Length
  // checks: retry it rather than take a short object.
  if (req.method == "GET" && (resp.status == 200 || resp.status == 206)) {
    uint64_t declared = 0;
    auto it = resp.headers.find("content-length");
    if (it != resp.headers.end() && parse_u64(it->second, &declared) &&
        declared != resp.body.size()) {
      return core::Status(core::Code::kTransient, what + ": answer cut short");
    }
  }
  return resp;
}

core::Result<RestBackend::Response> RestBackend::call(const Request& req) {
  const int max_attempts = std::max(1, options_.max_attempts);
  std::chrono::milliseconds waited{0};
  core::Status last;
  for (int attempt = 1;; ++attempt) {
    auto r = perform_once(req);
    if (r.ok()) {
      if (!is_retryable_http(r->status)) return r;
      std::string msg = server_message(r->body);
      last = core::Status(core::Code::kTransient,
                          "rest " + req.method + " " + location() + "/" + req.object + ": HTTP " +
                              std::to_string(r->status) + (msg.empty() ? "" : " " + msg));
    } else if (r.status().code() == core::Code::kTransient) {
      last = r.status();
    } else {
      return r.status();
    }
    std::chrono::milliseconds budget = options_.max_total_backoff - waited;
    if (attempt >= max_attempts || budget.count() <= 0) {
      return core::Status(core::Code::kTransient, last.message() + " (gave up after " +
                                                      std::to_string(attempt) + " attempts)");
    }
    std::chrono::milliseconds delay =
        std::min(curl_kit::jittered_backoff(options_.initial_backoff, options_.max_backoff, attempt), budget);
    std::this_thread::sleep_for(delay);
    waited += delay;
  }
}

core::Status RestBackend::error_of(const Request& req, const Response& resp) const {
  const std::string what = "rest " + req.method + " " + location() + "/" + req.object;
  std::string msg = server_message(resp.body);
  const std::string http = "HTTP " + std::to_string(resp.status) + (msg.empty() ? "" : ": " + msg);
  switch (resp.status) {
    case 401:
      return core::Status(core::Code::kPermissionDenied,
                          what + ": authentication failed (" + http +
                              "); set CAIRN_TOKEN or CAIRN_TOKEN_FILE to a valid token");
    case 403:
      return core::Status(core::Code::kPermissionDenied, what + ": forbidden (" + http + ")");
    case 404:
      return core::not_found(what + ": not found");
    case 409:
      return core::already_exists(what + ": object already exists");
    case 400:
    case 413:
    case 416:
      return core::invalid_argument(what + ": " + http);
    default:
      return core::io_error(what + ": unexpected answer " + http);
  }
}

core::Status RestBackend::save(const Handle& h, core::ByteView data) {
  TRY(LocalBackend::check_handle(h));
  Request req{"PUT", object_of(h), data, ""};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200 || resp.status == 201 || resp.status == 204) return {};
  return error_of(req, resp);
}

core::Result<core::Bytes> RestBackend::load(const Handle& h, uint64_t offset, uint64_t length) {
  TRY(LocalBackend::check_handle(h));
  Request req{"GET", object_of(h), {}, ""};
  if (length > 0) {
    if (offset > UINT64_MAX - length)
      return core::invalid_argument(h.to_string() + ": range " + std::to_string(offset) + "+" +
                                    std::to_string(length) + " overflows");
    req.range = "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  } else if (offset > 0) {
    // "To the end" from `offset`: an empty answer at offset == size is valid,
    // which no Range header can express.
    ASSIGN_OR_RETURN(FileInfo fi, stat(h));
    if (offset > fi.size)
      return core::invalid_argument(h.to_string() + ": offset " + std::to_string(offset) +
                                    " is past the end (" + std::to_string(fi.size) + " bytes)");
    if (offset == fi.size) return core::Bytes();
    req.range = "bytes=" + std::to_string(offset) + "-";
  }
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200 && req.range.empty()) return std::move(resp.body);
  if (resp.status == 206 || (resp.status == 200 && !req.range.empty() && offset == 0 &&
                             (length == 0 || resp.body.size() == length))) {
    if (length > 0 && resp.body.size() != length)
      return core::corruption(h.to_string() + ": server sent " + std::to_string(resp.body.size()) +
                              " bytes for a range of " + std::to_string(length));
    return std::move(resp.body);
  }
  if (resp.status == 416)
    return core::invalid_argument(h.to_string() + ": range " + std::to_string(offset) + "+" +
                                  std::to_string(length) + " is past the end of the object");
  return error_of(req, resp);
}

core::Result<FileInfo> RestBackend::stat(const Handle& h) {
  TRY(LocalBackend::check_handle(h));
  Request req{"HEAD", object_of(h), {}, ""};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status != 200) return error_of(req, resp);
  uint64_t size = 0;
  auto it = resp.headers.find("content-length");
  if (it == resp.headers.end() || !parse_u64(it->second, &size))
    return core::io_error("rest HEAD " + h.to_string() + ": answer without Content-Length");
  return FileInfo{h.name, size};
}

core::Status RestBackend::list(FileType t, const std::function<void(const FileInfo&)>& fn) {
  if (t == FileType::kConfig) {
    auto fi = stat({FileType::kConfig, "config"});
    if (fi.ok()) fn(*fi);
    return fi.ok() || fi.status().code() == core::Code::kNotFound ? core::ok_status() : fi.status();
  }
  Request req{"GET", std::string(type_dir(t)) + "/", {}, ""};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status != 200) return error_of(req, resp);
  auto j = nlohmann::json::parse(resp.body.begin(), resp.body.end(), nullptr, false);
  if (!j.is_array())
    return core::io_error("rest GET " + req.object + ": listing is not a JSON array");
  try {
    for (const auto& item : j)
      fn(FileInfo{item.at("name").get<std::string>(), item.at("size").get<uint64_t>()});
  } catch (const nlohmann::json::exception& e) {
    return core::io_error("rest GET " + req.object + ": malformed listing: " + e.what());
  }
  return {};
}

core::Status RestBackend::remove(const Handle& h) {
  TRY(LocalBackend::check_handle(h));
  Request req{"DELETE", object_of(h), {}, ""};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200 || resp.status == 204 || resp.status == 404) return {};
  return error_of(req, resp);
}

core::Result<bool> RestBackend::exists() {
  auto fi = stat({FileType::kConfig, "config"});
  if (fi.ok()) return true;
  if (fi.status().code() == core::Code::kNotFound) return false;
  return fi.status();
}

core::Status RestBackend::create() {
  ASSIGN_OR_RETURN(bool there, exists());
  if (there) return core::already_exists("a repository already exists at " + location());
  return {};
}

}  // namespace cairn::storage
