#!/usr/bin/env python3
"""Writes tests/data/tokenizer_corpus.jsonl: the tokenizer test corpus (written for tinyserve).

Each line is {"id", "category", "text"} or, for byte sequences that are not valid UTF-8,
{"id", "category", "hex"}; "allow_special": false marks cases encoded with special-token text
treated as plain text. Texts may hold lone surrogates (JSON "\\ud800"): a JavaScript string can,
UTF-8 cannot; the tests give the C++ side the bytes JavaScript's UTF-8 encoder produces (U+FFFD
for each lone surrogate), which is also what Hugging Face's tokenizer encodes.
Categories used by the benchmark: english, cjk, code. Deterministic (fixed seed).
"""
import json
import os
import random

random.seed(20261124)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_corpus.jsonl")

ENGLISH = [
    "The harbour was quiet that morning, except for the gulls arguing over a crate of sardines "
    "that someone had left open on the pier. Marta counted the boats twice, as she always did, "
    "before unlocking the ticket office.",
    "When the committee finally published its report, nobody was surprised that it recommended "
    "further study. What did surprise people was the appendix: forty pages of letters from "
    "residents who'd been waiting since 1998 for the bridge to be repaired.",
    "I can't remember who said it first, but it's true that you don't really understand a "
    "recipe until you've burned it at least once. We'll try again tomorrow; they're selling "
    "fresh basil at the market on Saturdays.",
    "Photosynthesis converts light energy into chemical energy. In the light-dependent "
    "reactions, water is split and oxygen is released; in the Calvin cycle, carbon dioxide is "
    "fixed into three-carbon sugars using ATP and NADPH.",
    "Dear Mr. O'Neill,\n\nThank you for your letter of 14 March. I'm afraid the parcel you "
    "describe (order #A-20391) was returned to our warehouse on 2 April. Could you confirm "
    "your current address?\n\nKind regards,\nJ. Whitfield",
    "The quarterly numbers looked fine on paper: revenue up 4.2%, costs down 1.7%, churn flat. "
    "But the CFO kept tapping one line of the spreadsheet -- deferred maintenance -- which had "
    "quietly tripled since last year.",
    "HOW TO REPLACE A BICYCLE TUBE: 1) Shift to the smallest cog. 2) Open the brake and remove "
    "the wheel. 3) Lever one side of the tyre off the rim. 4) Pull out the old tube and check "
    "the tyre for thorns!",
    "She read the telegram twice. \"Arriving Thursday stop bring the dog stop\" -- which was "
    "odd, because they hadn't owned a dog in eleven years, and Thursday was already over.",
    "According to the survey, 62 percent of respondents said they'd prefer a four-day week, "
    "while 23 percent were undecided and the rest (roughly 15 percent) said they'd rather keep "
    "things as they are.",
    "Mountain weather changes fast. Pack a windproof layer, a map you can read without a "
    "battery, and more water than you think you'll need; tell someone where you're going and "
    "when you'll be back.",
    "The museum's new wing opens on Friday. Visitors can see the restored mosaics, a room of "
    "Bronze Age tools, and -- for the first time in Europe -- the complete set of the Hallett "
    "astronomical charts.",
    "Well... I suppose we COULD take the scenic route?? It's only forty minutes longer, and "
    "honestly, the motorway's been a car park since Tuesday.",
]

CHINESE = [
    "今天早上下了一场小雨，空气特别清新。我沿着河边走了半个小时，看到很多人在打太极拳，还有几位老人在下象棋。",
    "人工智能的发展给各行各业带来了深刻的变化。从医疗诊断到金融风控，从自动驾驶到智能客服，新的应用不断涌现。",
    "这本书讲述了一个普通家庭三代人的故事，时间跨度从上世纪五十年代一直到二〇二〇年，语言朴实，感情真挚。",
    "请在周五之前提交季度报告，并附上预算明细表。如有疑问，请联系财务部的王经理（分机号：8123）。",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    "我们公司成立于2008年，总部位于上海，目前在全国拥有三十多家分支机构，员工超过五千人。",
]
JAPANESE = [
    "東京の桜は今週末が見頃だそうです。上野公園はとても混雑するので、朝早く行くことをおすすめします。",
    "このアプリケーションを使用するには、まずアカウントを作成してください。パスワードは８文字以上で設定してください。",
    "昨日は友達と一緒にラーメンを食べに行きました。スープが濃厚で、とてもおいしかったです！",
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "カタカナとひらがなを混ぜた文章：コンピューターのメモリーがたりないので、ファイルをけしました。",
]
KOREAN = [
    "오늘 날씨가 정말 좋네요. 점심 먹고 한강 공원에 산책하러 갈까요?",
    "이 제품은 국내에서 생산되었으며, 품질 보증 기간은 구매일로부터 1년입니다.",
    "한국어는 한글이라는 고유한 문자를 사용합니다. 한글은 1443년 세종대왕이 창제하였습니다.",
    "회의는 오후 3시에 시작합니다. 자료는 미리 이메일로 보내 드리겠습니다.",
]
ARABIC = [
    "مرحبا بكم في موقعنا. نحن نقدم خدمات الترجمة والتدقيق اللغوي بأسعار مناسبة.",
    "كان الجو جميلا في ذلك اليوم، فخرجنا إلى الحديقة وجلسنا تحت شجرة الزيتون الكبيرة.",
    "اللغة العربية من أكثر اللغات انتشارا في العالم، ويتحدث بها أكثر من ٤٠٠ مليون شخص.",
    "بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ",
]
HINDI = [
    "भारत एक विशाल देश है जिसमें अनेक भाषाएँ बोली जाती हैं। हिंदी यहाँ की सबसे अधिक बोली जाने वाली भाषा है।",
    "कल शाम को हम लोग बाज़ार गए और वहाँ से ताज़ी सब्ज़ियाँ खरीदीं।",
    "कृपया अपना नाम, पता और फ़ोन नंबर नीचे दिए गए फ़ॉर्म में भरें। धन्यवाद!",
]
OTHER_SCRIPTS = [
    "Привет! Как дела? Сегодня в Москве +5°C и небольшой дождь.",
    "Ελληνικά: Η γλώσσα είναι ζωντανός οργανισμός που αλλάζει συνεχώς.",
    "עברית: שלום עולם, מה שלומך היום?",
    "ภาษาไทย: สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย",
    "Tiếng Việt: Tôi rất thích ăn phở bò vào buổi sáng.",
    "Türkçe: İstanbul'da hava bugün çok güzel; Çarşı'ya gidelim mi?",
    "Deutsch: Die Straße war naß, und die Füße der Wanderer wurden kälter. Grüß Gott!",
    "Français : « Où est la bibliothèque ? » demanda-t-elle, l'air inquiet.",
    "Español: ¿Dónde está el baño? ¡Muchas gracias, señor Muñoz!",
    "Polski: Zażółć gęślą jaźń — to zdanie zawiera wszystkie polskie znaki.",
]

EMOJI = [
    "Great job team! 🎉🎉🎉 Let's celebrate 🍕🍻",
    "Family: 👨‍👩‍👧‍👦 and 👩‍👩‍👦 and 👨‍👨‍👧‍👧",
    "Thumbs: 👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿",
    "Professions: 👩🏽‍💻 🧑🏿‍🚀 👨🏻‍🍳 👩🏾‍🔬 🧑‍⚕️",
    "Flags: 🇯🇵 🇺🇸 🇧🇷 🇰🇷 🇪🇺 🏴‍☠️ 🏳️‍🌈",
    "Hearts ❤️🧡💛💚💙💜🖤🤍🤎 and ❤️‍🔥 ❤️‍🩹",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣ and text-style ☺︎ vs emoji ☺️",
    "mixed😀text😃without😄spaces😁and🙂numbers123🙃",
    "🤦‍♂️🤷‍♀️🙋🏽‍♂️💁🏻‍♀️",
]

PY_CODE = '''import json
from dataclasses import dataclass, field


@dataclass
class Order:
    order_id: int
    items: list[str] = field(default_factory=list)
    total_cents: int = 0

    def add(self, name: str, price_cents: int) -> None:
        """Adds one item; prices are integers to avoid float rounding."""
        self.items.append(name)
        self.total_cents += price_cents


def load(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            yield Order(**json.loads(line))
'''
CPP_CODE = '''#include <cstdint>
#include <vector>

namespace demo {

// Returns the index of the first element >= value, or data.size().
template <typename T>
size_t LowerBound(const std::vector<T>& data, const T& value) {
  size_t lo = 0, hi = data.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (data[mid] < value) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace demo
'''
JS_CODE = '''export async function fetchUsers(baseUrl, { limit = 20, signal } = {}) {
  const res = await fetch(`${baseUrl}/users?limit=${limit}`, { signal });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const body = await res.json();
  return body.users.map(({ id, name, email }) => ({ id, name: name.trim(), email }));
}

const debounce = (fn, ms = 250) => {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
};
'''
RUST_CODE = '''use std::collections::HashMap;

fn word_counts(text: &str) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

fn main() {
    let c = word_counts("the cat and the hat");
    println!("{:?}", c.get("the")); // Some(2)
}
'''
GO_CODE = '''package main

import (
\t"fmt"
\t"net/http"
)

func handler(w http.ResponseWriter, r *http.Request) {
\tname := r.URL.Query().Get("name")
\tif name == "" {
\t\tname = "world"
\t}
\tfmt.Fprintf(w, "hello, %s\\n", name)
}

func main() {
\thttp.HandleFunc("/", handler)
\t_ = http.ListenAndServe(":8080", nil)
}
'''
SQL_CODE = '''SELECT c.customer_id,
       c.name,
       COUNT(o.order_id)      AS orders,
       SUM(o.total) / 100.0   AS revenue
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.customer_id
WHERE o.created_at >= DATE '2024-01-01'
GROUP BY c.customer_id, c.name
HAVING COUNT(o.order_id) > 3
ORDER BY revenue DESC
LIMIT 50;
'''
SHELL_CODE = '''#!/usr/bin/env bash
set -euo pipefail
for f in "$@"; do
  if [[ -f "$f" ]]; then
    sha256sum -- "$f" | awk '{print $1}' >> checksums.txt
  else
    echo "skip: $f" >&2
  fi
done
'''
HTML_CODE = '''<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Order &amp; Delivery</title></head>
<body>
  <div class="card" data-id="42">
    <h1>Thanks, <span id="name">Ana</span>!</h1>
    <p>Your order <a href="/orders/42?ref=mail">#42</a> ships on <time>2024-05-03</time>.</p>
  </div>
  <script>document.querySelector("#name").textContent ??= "friend";</script>
</body>
</html>
'''
CODE = [PY_CODE, CPP_CODE, JS_CODE, RUST_CODE, GO_CODE, SQL_CODE, SHELL_CODE, HTML_CODE]

cases = []


def add(category, text=None, raw=None, allow_special=True):
    case = {"id": f"{category}-{len(cases):04d}", "category": category}
    if raw is not None:
        case["hex"] = raw.hex()
    else:
        case["text"] = text
    if not allow_special:
        case["allow_special"] = False
    cases.append(case)


# English prose: single paragraphs, and documents of shuffled paragraphs (up to ~6 KB).
for p in ENGLISH:
    add("english", p)
for _ in range(45):
    k = random.randint(3, 12)
    add("english", "\n\n".join(random.choice(ENGLISH) for _ in range(k)))
# CJK prose, alone and as longer documents.
for p in CHINESE + JAPANESE + KOREAN:
    add("cjk", p)
for _ in range(35):
    pool = random.choice([CHINESE, JAPANESE, KOREAN, CHINESE + JAPANESE + KOREAN])
    add("cjk", "\n".join(random.choice(pool) for _ in range(random.randint(3, 14))))
# Other scripts.
for p in ARABIC + HINDI + OTHER_SCRIPTS:
    add("multilingual", p)
for _ in range(20):
    pool = ARABIC + HINDI + OTHER_SCRIPTS + CHINESE + ENGLISH
    add("multilingual", " ".join(random.choice(pool) for _ in range(random.randint(2, 6))))
# Source code: each file, indentation variants, and concatenations.
for c in CODE:
    add("code", c)
    add("code", c.replace("    ", "\t"))
    add("code", c.replace("\n", "\r\n"))
for _ in range(30):
    add("code", "\n".join(random.choice(CODE) for _ in range(random.randint(2, 5))))
# Emoji.
for e in EMOJI:
    add("emoji", e)
for _ in range(10):
    add("emoji", "".join(random.choice(EMOJI) for _ in range(3)))
# Combining marks and NFD / NFC input.
import unicodedata
for s in ["café", "naïve façade", "Ångström", "São Paulo", "Đặng Thị Ngọc Hà", "한국어 조합",
          "が ぱ ゔ", "ﬁ ligature Ⅻ ℌ ①"]:
    add("normalization", unicodedata.normalize("NFD", s))
    add("normalization", unicodedata.normalize("NFC", s))
    add("normalization", unicodedata.normalize("NFKD", s))
add("normalization", "e\u0301\u0301\u0301 a\u0308\u0304 o\u0328\u0304 Z\u0335\u0336\u0337")
add("normalization", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ text")
add("normalization", "\u212b \u2126 \u212a kelvin and ohm singletons")
add("normalization", "\u0301 starts with a combining mark")
add("normalization", "x'\u212a and 'ſ and 'S 'LL 'Re")
# Digits.
add("digits", "".join(random.choice("0123456789") for _ in range(2000)))
add("digits", "Pi is 3.14159265358979323846264338327950288419716939937510 roughly.")
add("digits", "١٢٣٤٥ ٦٧٨٩٠ and ０１２３ and ⅠⅡⅢ and ½ ¾ and ²³")
for _ in range(10):
    add("digits", " ".join(str(random.randint(0, 10**random.randint(1, 18))) for _ in range(40)))
# Whitespace runs.
for ws in [" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n ", "\t\t\n", "\u3000", "\u00a0",
           "\u2028", "\u0085", "\ufeff", "\u200b", "\x0b\x0c"]:
    add("whitespace", f"alpha{ws}beta{ws * 3}gamma{ws * 7}  delta{ws}")
    add("whitespace", ws * 5)
add("whitespace", "")
add("whitespace", "trailing spaces   ")
add("whitespace", "   leading spaces")
add("whitespace", "a \n\n\n b \r\n\r\n c\r\r\r d\n \n \n e \t \t f")
add("whitespace", "x" + " " * 300 + "y" + "\n" * 100 + "z" + "\t" * 50)
add("whitespace", "line one\r\nline two\r\n\r\n  indented\r\n\tTabbed\r\n")
# URLs and JSON.
for u in ["https://example.com/path/to/page?query=1&other=two#section",
          "http://user:pass@host.example.org:8080/a%20b/c.html",
          "ftp://ftp.example.net/pub/file-1.2.3.tar.gz",
          "mailto:someone@example.com?subject=Hello%20there",
          "https://ja.wikipedia.org/wiki/東京都 and https://例え.jp/パス"]:
    add("url", f"Visit {u} now. ({u})")
for _ in range(15):
    obj = {"id": random.randint(1, 10**6), "name": random.choice(["Ana", "李雷", "Jürgen", "O'Brien"]),
           "tags": random.sample(["x", "y", "z", "😀", "a b", "\"q\""], 3),
           "nested": {"ok": random.random() < 0.5, "score": round(random.random() * 100, 3),
                      "none": None}}
    add("json", json.dumps(obj, ensure_ascii=random.random() < 0.5, indent=random.choice([None, 2])))
# Special-token strings inside text (allowed and as plain text).
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
           "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|vision_start|>",
           "<|image_pad|>", "<|file_sep|>", "<think>", "</think>", "<tool_response>"]
for i in range(24):
    parts = []
    for _ in range(random.randint(2, 8)):
        parts.append(random.choice(SPECIAL + ENGLISH[:3] + CHINESE[:2] + ["x", " ", "\n", "<|", "|>", "<|im_"]))
    text = "".join(parts)
    add("special", text, allow_special=(i % 2 == 0))
add("special", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>")
add("special", "<|im_start|>user\nWhat is 2+2?<|im_end|>", allow_special=False)
add("special", "<|im_start|><|im_start|><|im_end|><|im_end|>")
add("special", "<|im_start|>\u0301 combining after a special token")
add("special", "< |im_start| > <|im_start <im_start|> <|IM_START|>")
# Lone surrogates (JSON escapes) and invalid UTF-8 bytes.
add("surrogate", "a\ud800b")
add("surrogate", "\udfff alone at the start")
add("surrogate", "pair split: \ud83d and \ude00 apart; whole: \ud83d\ude00")
add("surrogate", "\ud800\ud800\udc00\udc00")
add("surrogate", "end with a lone high surrogate \udbff")
for raw in [b"\xff", b"abc\xffdef", b"\xc3\x28", b"\xe2\x82", b"\xe2\x82\x28", b"\xf0\x9f\x98",
            b"\xf0\x9f\x98 tail", b"\xed\xa0\x80 surrogate bytes", b"\xc0\xaf overlong",
            b"\xe0\x80\xaf overlong3", b"\xf4\x90\x80\x80 beyond", b"\x80\x80\x80 continuation",
            b"\xf8\x88\x80\x80\x80 five", "ok ünïcödé".encode() + b"\xc3" + "中".encode()[:2],
            b"\x00 nul \x00 bytes \x01\x02\x1f\x7f", bytes(range(256))]:
    add("invalid_utf8", raw=raw)
for _ in range(10):
    base = random.choice(ENGLISH + CHINESE).encode()
    b = bytearray(base)
    for _ in range(5):
        b[random.randrange(len(b))] = random.randrange(256)
    add("invalid_utf8", raw=bytes(b))
# Very long words.
add("long", "a" * 5000)
add("long", "ab" * 3000)
add("long", "Pneumonoultramicroscopicsilicovolcanoconiosis" * 40)
add("long", "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8000)))
add("long", "中" * 3000)
add("long", "😀" * 1000)
add("long", "-" * 4000 + "=" * 4000)
add("long", "".join(random.choice("ghijk") for _ in range(3000)))
# Random mixtures of everything above.
POOL = ENGLISH + CHINESE + JAPANESE + KOREAN + ARABIC + HINDI + OTHER_SCRIPTS + EMOJI
for _ in range(40):
    pieces = [random.choice(POOL)[: random.randint(5, 80)] for _ in range(random.randint(2, 8))]
    seps = ["", " ", "\n", "  ", "\t", "\r\n", " - ", "..."]
    add("mixed", "".join(p + random.choice(seps) for p in pieces))

with open(OUT, "w", encoding="utf-8", newline="\n") as f:
    for c in cases:
        try:
            line = json.dumps(c, ensure_ascii=False)
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(c, ensure_ascii=True)
        f.write(line + "\n")
print(f"{len(cases)} cases, {os.path.getsize(OUT)} bytes -> {OUT}")
