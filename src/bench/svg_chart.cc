#include "bench/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace tinyserve::bench {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// Ticks at 1, 2 or 5 times a power of ten, about `target` of them over [lo, hi].
std::vector<double> NiceTicks(double lo, double hi, int target) {
  double span = hi - lo;
  double raw = span / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (span / step <= target) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

// Tick labels in plain notation with thousands separators ("15,000", "0.005"): ticks are round
// numbers, so at most three decimals are ever needed.
std::string Num(double v) {
  std::string text = FormatGrouped(v, 3);
  if (text.find('.') == std::string::npos) return text;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text == "-0" ? "0" : text;
}

std::string TickLabel(double v, bool ms, double axis_max) {
  if (!ms) return Num(v);
  return axis_max >= 2000 ? Num(v / 1000) + " s" : Num(v) + " ms";
}

}  // namespace

std::string FormatGrouped(double v, int decimals) {
  std::string digits = fmt::format("{:.{}f}", std::abs(v), decimals);
  size_t int_len = std::min(digits.find('.'), digits.size());
  std::string out = v < 0 && std::stod(digits) != 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && i < int_len && (int_len - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string XmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderSvg(const LineChart& chart, int width, int height) {
  const double left = 70, right = 160, top = 40, bottom = 50;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  auto tx = [&](double x) { return chart.log2_x ? std::log2(std::max(x, 1e-9)) : x; };

  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_hi = 0;
  for (const ChartSeries& s : chart.series) {
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y) || (chart.log2_x && x <= 0)) continue;
      x_lo = std::min(x_lo, tx(x));
      x_hi = std::max(x_hi, tx(x));
      y_hi = std::max(y_hi, y);
    }
  }
  if (!std::isfinite(x_lo)) x_lo = 0, x_hi = 1;
  if (x_hi <= x_lo) x_hi = x_lo + 1;
  if (y_hi <= 0) y_hi = 1;
  std::vector<double> y_ticks = NiceTicks(0, y_hi * 1.05, 5);
  double y_top = std::max(y_hi * 1.05, y_ticks.back());
  auto px = [&](double x) { return left + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return top + plot_h - y / y_top * plot_h; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{3}</text>\n",
      width, height, left + plot_w / 2, XmlEscape(chart.title));
  // Axes, grid and tick labels.
  for (double t : y_ticks) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>\n"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        left, py(t), left + plot_w, left - 6, py(t) + 4, TickLabel(t, chart.y_ms, y_top));
  }
  std::vector<double> x_ticks;
  if (chart.log2_x) {
    for (double e = std::ceil(x_lo); e <= x_hi + 1e-9; e += 1) x_ticks.push_back(std::exp2(e));
  } else {
    x_ticks = NiceTicks(x_lo, x_hi, 6);
  }
  for (double t : x_ticks) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(t),
                       top + plot_h + 18, TickLabel(t, chart.x_ms, x_hi));
  }
  svg += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n"
      "<line x1=\"{0}\" y1=\"{2}\" x2=\"{3}\" y2=\"{2}\" stroke=\"black\"/>\n"
      "<text x=\"{4}\" y=\"{5}\" text-anchor=\"middle\">{6}</text>\n"
      "<text x=\"16\" y=\"{7}\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
      "{7})\">{8}</text>\n",
      left, top, top + plot_h, left + plot_w, left + plot_w / 2, height - 10,
      XmlEscape(chart.x_label), top + plot_h / 2, XmlEscape(chart.y_label));
  // Series and legend.
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const ChartSeries& s = chart.series[i];
    const char* color = kColors[i % std::size(kColors)];
    std::string points;
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y) || (chart.log2_x && x <= 0)) continue;
      points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    }
    if (!points.empty()) {
      points.pop_back();
      svg +=
          fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                      color, points);
      if (s.points.size() <= 16) {
        for (auto [x, y] : s.points) {
          if (!std::isfinite(x) || !std::isfinite(y) || (chart.log2_x && x <= 0)) continue;
          svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(x),
                             py(y), color);
        }
      }
    }
    double ly = top + 10 + 18 * i;
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" "
        "stroke-width=\"3\"/>\n<text x=\"{4:.1f}\" y=\"{5:.1f}\">{6}</text>\n",
        left + plot_w + 12, ly, left + plot_w + 32, color, left + plot_w + 38, ly + 4,
        XmlEscape(s.name));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace tinyserve::bench
