#include "util/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace tinyserve {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("{} is odd", x);
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  TS_ASSIGN_OR_RETURN(int h, Half(x));
  TS_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, AssignOrReturnPropagatesTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "3 is odd");
  EXPECT_EQ(r.status().ToString(), "INVALID_ARGUMENT: 3 is odd");
}

TEST(StatusTest, WithPrefixNamesTheContext) {
  Status s = NotFoundError("tensor {}", "x").WithPrefix("model.gguf");
  EXPECT_EQ(s.message(), "model.gguf: tensor x");
  EXPECT_TRUE(OkStatus().WithPrefix("a").ok());
}

TEST(StatusTest, StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(5);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 5);
}

}  // namespace
}  // namespace tinyserve
