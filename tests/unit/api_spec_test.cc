// docs/api.yaml describes exactly the routes the server has: the same
// (method, path) pairs, each with the route's permission as
// x-cairn-permission. A route added without docs, docs left behind for a
// removed route, or a permission changed on one side fails, naming it.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>

#include "server/server.h"

namespace cairn::server {
namespace {

const char* const kSpec = CAIRN_SOURCE_DIR "/docs/api.yaml";

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

// An operation key of a path item (not "parameters", "summary", x-...).
bool is_method(const std::string& key) {
  static const std::set<std::string> kMethods = {"get",   "put",  "post",    "delete",
                                                 "patch", "head", "options", "trace"};
  return kMethods.count(key) > 0;
}

// "GET /api/v1/services/{service}" -> permission, from the OpenAPI file.
std::map<std::string, std::string> documented_operations(const YAML::Node& spec) {
  std::map<std::string, std::string> out;
  for (const auto& path : spec["paths"]) {
    for (const auto& op : path.second) {
      std::string method = op.first.as<std::string>();
      if (!is_method(method)) continue;
      const YAML::Node perm = op.second["x-cairn-permission"];
      out[upper(method) + " " + path.first.as<std::string>()] =
          perm ? perm.as<std::string>() : "(none)";
    }
  }
  return out;
}

TEST(ApiSpec, ParsesAsOpenApi3) {
  YAML::Node spec = YAML::LoadFile(kSpec);
  ASSERT_TRUE(spec["openapi"]) << kSpec;
  EXPECT_EQ(spec["openapi"].as<std::string>().substr(0, 2), "3.");
  ASSERT_TRUE(spec["paths"] && spec["paths"].IsMap()) << kSpec << ": no paths";
  // Bearer tokens, required everywhere.
  const YAML::Node scheme = spec["components"]["securitySchemes"]["bearer"];
  ASSERT_TRUE(scheme) << kSpec << ": no bearer security scheme";
  EXPECT_EQ(scheme["type"].as<std::string>(), "http");
  EXPECT_EQ(scheme["scheme"].as<std::string>(), "bearer");
  ASSERT_TRUE(spec["security"] && spec["security"].IsSequence() && spec["security"][0]["bearer"])
      << kSpec;
}

TEST(ApiSpec, EveryRouteIsDocumentedWithItsPermission) {
  YAML::Node spec = YAML::LoadFile(kSpec);
  auto documented = documented_operations(spec);
  std::map<std::string, std::string> routed;
  for (const auto& r : api_routes()) {
    std::string key = r.method + " " + r.path;
    EXPECT_TRUE(routed.emplace(key, r.permission).second) << key << " is routed twice";
  }
  ASSERT_FALSE(routed.empty());
  for (const auto& [op, perm] : routed) {
    auto it = documented.find(op);
    if (it == documented.end()) {
      ADD_FAILURE() << op << " (permission " << perm
                    << ") is a route of the server but not in docs/api.yaml";
    } else {
      EXPECT_EQ(it->second, perm)
          << op << ": x-cairn-permission in docs/api.yaml differs from the route's permission";
    }
  }
  for (const auto& [op, perm] : documented)
    if (routed.count(op) == 0)
      ADD_FAILURE() << op << " (x-cairn-permission " << perm
                    << ") is in docs/api.yaml but the server has no such route";
}

// Every operation documents its error answers with the {"error": ...}
// shape, and every path parameter of its template.
TEST(ApiSpec, OperationsDescribeErrorsAndParameters) {
  YAML::Node spec = YAML::LoadFile(kSpec);
  YAML::Node responses = spec["components"]["responses"];
  for (const auto& path : spec["paths"]) {
    std::string p = path.first.as<std::string>();
    for (const auto& op : path.second) {
      if (!is_method(op.first.as<std::string>())) continue;
      std::string name = upper(op.first.as<std::string>()) + " " + p;
      const YAML::Node rs = op.second["responses"];
      ASSERT_TRUE(rs) << name << ": no responses";
      for (const char* code : {"401", "413", "429"}) {
        EXPECT_TRUE(rs[code]) << name << ": no " << code << " response";
      }
      std::string perm =
          op.second["x-cairn-permission"] ? op.second["x-cairn-permission"].as<std::string>() : "";
      if (perm != "authenticated") {
        EXPECT_TRUE(rs["403"]) << name << ": no 403 response";
      }
      bool ok_documented = false;
      for (const auto& r : rs) {
        std::string code = r.first.as<std::string>();
        if (code[0] == '2') ok_documented = true;
        if (code[0] != '4' && code[0] != '5') continue;
        const YAML::Node ref = r.second["$ref"];
        ASSERT_TRUE(ref) << name << " " << code << ": errors refer to a components/responses entry";
        std::string target = ref.as<std::string>();
        std::string key = target.substr(target.rfind('/') + 1);
        ASSERT_TRUE(responses[key]) << name << " " << code << ": " << target << " is not defined";
        EXPECT_EQ(responses[key]["content"]["application/json"]["schema"]["$ref"].as<std::string>(),
                  "#/components/schemas/Error")
            << name << " " << code;
      }
      EXPECT_TRUE(ok_documented) << name << ": no success response";
      // Path parameters: each {name} of the template is declared, and nothing else.
      std::set<std::string> in_template, declared;
      for (size_t i = p.find('{'); i != std::string::npos; i = p.find('{', i + 1))
        in_template.insert(p.substr(i + 1, p.find('}', i) - i - 1));
      for (const auto& param : op.second["parameters"]) {
        YAML::Node d = param;
        if (param["$ref"]) {
          std::string ref = param["$ref"].as<std::string>();
          d = spec["components"]["parameters"][ref.substr(ref.rfind('/') + 1)];
          ASSERT_TRUE(d) << name << ": " << ref << " is not defined";
        }
        if (d["in"].as<std::string>() == "path") declared.insert(d["name"].as<std::string>());
      }
      EXPECT_EQ(in_template, declared) << name << ": path parameters";
    }
  }
}

}  // namespace
}  // namespace cairn::server
