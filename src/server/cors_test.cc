#include "server/cors.h"

#include <gtest/gtest.h>

namespace tinyserve {
namespace {

TEST(CorsTest, OriginsAreReadFromCommasOrVllmsJsonList) {
  auto commas = ParseAllowedOrigins({"http://A.example:3000/", "https://b.example"});
  ASSERT_TRUE(commas.ok()) << commas.status().ToString();
  EXPECT_EQ(*commas, (std::vector<std::string>{"http://a.example:3000", "https://b.example"}));
  // The command line splits the JSON list at its comma; it is read whole again.
  auto json = ParseAllowedOrigins({"[\"http://a.example:3000\"", " \"*\"]"});
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(*json, (std::vector<std::string>{"http://a.example:3000", "*"}));
  // What CLI11 leaves of '["http://a.example:3000", "https://b.example"]' (brackets read as a
  // list by CLI11 itself).
  auto cli11 = ParseAllowedOrigins({"\"http://a.example:3000\"", " \"https://b.example\""});
  ASSERT_TRUE(cli11.ok()) << cli11.status().ToString();
  EXPECT_EQ(*cli11, (std::vector<std::string>{"http://a.example:3000", "https://b.example"}));
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"app.example"}, {"[1]"}, {"[\"http://a\""}}) {
    EXPECT_FALSE(ParseAllowedOrigins(bad).ok()) << bad[0];
  }
}

TEST(CorsTest, OnlyListedOriginsAreAllowed) {
  const std::vector<std::string> listed = {"http://a.example:3000"};
  EXPECT_TRUE(OriginAllowed(listed, "http://A.example:3000"));
  EXPECT_FALSE(OriginAllowed(listed, "http://a.example:3001"));
  EXPECT_FALSE(OriginAllowed(listed, "https://a.example:3000"));
  EXPECT_FALSE(OriginAllowed(listed, ""));
  EXPECT_FALSE(OriginAllowed({}, "http://a.example:3000"));
  EXPECT_TRUE(OriginAllowed({"*"}, "null"));
}

}  // namespace
}  // namespace tinyserve
