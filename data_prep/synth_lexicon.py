"""Word lists and sentence templates of `data_prep.synth`: genuine words of each language in its
own script, enough variety for a SentencePiece vocabulary of a few thousand pieces."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    """An article the other articles link to."""

    title: str
    kind: str  # completes the defining sentence: "{name} is {kind}."
    art: str = ""  # determiner written before the link ("the ", "die ")
    aliases: tuple[str, ...] = ()  # display texts of piped links
    redirect: str = ""  # a redirect title pointing here
    trail: tuple[str, str, str] | None = None  # (link text, trail, sentence with {e})
    common: bool = False  # common noun: also linked with a lower-case first letter

    @property
    def name(self) -> str:
        return re.sub(r"\s*\([^()]*\)$", "", self.title)



# ---------------------------------------------------------------- lexicon
# Genuine words of each language; templates keep agreement simple (nominative subjects,
# gender-free verb forms) rather than perfect. "|" separates alternatives.

def _e(title: str, kind: str, art: str = "", aliases: str = "", redirect: str = "",
       trail: tuple[str, str, str] | None = None, common: bool = False) -> Entity:
    return Entity(title, kind, art, tuple(a for a in aliases.split("|") if a), redirect, trail,
                  common)


def _lang(**fields) -> dict:
    for key in ("fillers", "mentions", "definitions"):
        fields[key] = fields[key].split("|")
    fields["categories"] = fields["categories"].split("|")
    return fields


LEXICON: dict[str, dict] = {
    "en": _lang(
        joiner=" ", intro="{B} {vp}.", category_ns="Category", template_ns="Template",
        redirect_word="#REDIRECT", dab_template="disambiguation",
        dab=("Mercury", "may refer to:", [("Mercury (planet)", ", ", "the innermost planet"),
                                          ("Mercury (element)", ", ", "a chemical element"),
                                          ("Mercury (mythology)", ", ", "a Roman god")]),
        categories="Geography|Science|History", category_text="This category lists articles on {c}.",
        nouns={"": "bridge harbour museum village castle market garden railway island valley lake "
                   "forest tower cathedral university factory square street station theatre "
                   "hospital school palace farm chapel mill fountain cemetery monastery canal"},
        adjs="old ancient large small famous northern southern eastern western quiet busy "
             "historic modern narrow wide beautiful important rural coastal central remote royal",
        vps="was built in {year}|was restored in {year}|attracts many visitors every year|is "
            "described in several old books|was damaged by a storm in {year}|became a popular "
            "destination in the nineteenth century|is maintained by the local council|appears on "
            "many historical maps|was the subject of a study in {year}|is known for its quiet "
            "atmosphere|was rebuilt after a fire in {year}|is protected as a cultural monument",
        people="John Smith|Mary Taylor|Robert Brown|Emily Clark|William Harris|Sarah Lewis|"
               "James Walker|Anna Wright|Thomas Hall|Laura King",
        fillers="{np} {vp}.|Later, {np} {vp}.|According to {person}, {np} {vp}.|{person} wrote "
                "a detailed description of {np} in {year}.|Many people visit {np} and {np2} every "
                "summer.|The history of {np} is long and complex.|Local newspapers often report on "
                "{np}.|A small exhibition about {np} opened in {year}.",
        mentions="{E} is mentioned in many studies of {np}.|In {year}, {person} published a book "
                 "about {E}.|Researchers have compared {np} with {E}.|{E} played an important "
                 "role in the history of {np}.|Some visitors came to the region only to learn more "
                 "about {E}.|A famous essay on {E} appeared in {year}.|The local museum has a large "
                 "collection related to {E}.",
        definitions="{B} is {kind}.|{name} was first described in detail by {person} in {year}.|"
                    "Today {name} is the subject of many books, articles and exhibitions.|The name "
                    "{plain} is familiar to most schoolchildren.",
        entities=[
            _e("Mercury (planet)", "the smallest planet of the Solar System and the closest to "
               "the Sun", aliases="the planet Mercury"),
            _e("Mercury (element)", "a chemical element, a heavy silvery metal that is liquid at "
               "room temperature", aliases="quicksilver", redirect="Quicksilver"),
            _e("Danube", "the second-longest river in Europe", "the ", "Danube River",
               "Danube River"),
            _e("Mount Everest", "the highest mountain above sea level, in the Himalayas",
               aliases="Everest", redirect="Chomolungma"),
            _e("Vienna", "the capital and largest city of Austria", aliases="the Austrian "
               "capital", redirect="Wien"),
            _e("Marie Curie", "a physicist and chemist who studied radioactivity",
               aliases="Curie|Madame Curie", redirect="Maria Skłodowska"),
            _e("Telescope", "an optical instrument that makes distant objects appear closer",
               "the ", "optical telescope", trail=("telescope", "s", "Early {e} were made by "
               "spectacle makers in the Netherlands."), common=True),
            _e("Glacier", "a persistent body of dense ice that moves slowly under its own weight",
               "the ", "valley glacier", trail=("glacier", "s", "Many {e} in the Alps have been "
                                                "shrinking for decades."), common=True),
            _e("Sahara", "the largest hot desert in the world", "the ", "Sahara Desert",
               "Sahara Desert"),
            _e("Isaac Newton", "an English mathematician and physicist who formulated the laws "
               "of motion", aliases="Newton", redirect="Sir Isaac Newton"),
            _e("Great Wall of China", "a series of fortifications across northern China",
               "the ", "Great Wall", "Great Wall"),
            _e("Volcano", "a rupture in the crust of a planet through which lava and gases "
               "escape", "the ", "active volcano", trail=("volcano", "es", "Several active {e} "
                                                          "can be seen from the coast."),
               common=True),
            _e("Library", "a collection of books made accessible for reading and study", "the ",
               "public library", "Public library", common=True),
            _e("Pacific Ocean", "the largest and deepest ocean of the Earth", "the ", "Pacific",
               "Pacific"),
            _e("Leonardo da Vinci", "an Italian painter, engineer and scientist of the "
               "Renaissance", aliases="Leonardo", redirect="Da Vinci"),
            _e("Violin", "a wooden string instrument played with a bow", "the ", "fiddle",
               "Fiddle", ("violin", "s", "Two {e} and a cello were heard in the church."), True),
        ]),
}

LEXICON["de"] = _lang(
    joiner=" ", intro="{B} {vp}.", category_ns="Kategorie", template_ns="Vorlage",
    redirect_word="#WEITERLEITUNG", dab_template="Begriffsklärung",
    dab=("Merkur", "steht für:", [("Merkur (Planet)", ", ", "der sonnennächste Planet"),
                                  ("Merkur (Mythologie)", ", ", "ein römischer Gott"),
                                  ("Merkur (Zeitschrift)", ", ", "eine Kulturzeitschrift")]),
    categories="Geographie|Wissenschaft|Geschichte",
    category_text="Diese Kategorie enthält Artikel zum Thema {c}.",
    nouns={"m": "Hafen Turm Markt Garten Wald Bahnhof Platz Weg Dom Palast Friedhof Brunnen Hof",
           "f": "Brücke Kirche Burg Straße Stadt Insel Mühle Schule Universität Halle Mauer "
                "Kapelle Küste Quelle",
           "n": "Schloss Dorf Museum Rathaus Theater Kloster Tal Ufer Denkmal Gebäude Viertel"},
    adjs="alt groß klein neu berühmt historisch modern schön ruhig bekannt nördlich südlich "
         "östlich westlich wichtig lang breit schmal zentral ländlich",
    vps="wurde im Jahr {year} erbaut|wurde im Jahr {year} renoviert|wird jedes Jahr von vielen "
        "Touristen besucht|ist auf vielen alten Karten verzeichnet|gilt als Wahrzeichen der "
        "Region|liegt am Rand der Altstadt|wurde im Jahr {year} durch einen Sturm beschädigt|ist "
        "heute ein beliebtes Ausflugsziel|wird in mehreren alten Chroniken erwähnt|steht seit "
        "{year} unter Denkmalschutz|wurde von vielen Malern dargestellt",
    people="Hans Müller|Anna Schmidt|Peter Schneider|Maria Fischer|Klaus Weber|Ursula Meyer|"
           "Jürgen Wagner|Monika Becker|Wolfgang Hoffmann|Sabine Schulz",
    fillers="{np} {vp}.|Auch {np} {vp}.|{person} schrieb im Jahr {year} ein Buch über die "
            "Geschichte der Gegend.|Viele Menschen besuchen jeden Sommer die Umgebung.|Einige "
            "Forscher vermuten, dass {np} schon früher existierte.|Bis heute ist unklar, wann {np} "
            "entstanden ist.|Heute gehören {np} und {np2} zu den bekanntesten Orten der Gegend.",
    mentions="{E} wird in vielen Studien erwähnt.|Auch {E} spielte eine wichtige Rolle in der "
             "Geschichte der Region.|Laut {person} ist {E} von großer Bedeutung.|Im Jahr {year} "
             "wurde {E} erstmals ausführlich beschrieben.|Bis heute gilt {E} als wichtiges Thema "
             "der Forschung.|{E} und {np} werden oft miteinander verglichen.|Schon im Jahr {year} "
             "war {E} weit über die Region hinaus bekannt.",
    definitions="{B} ist {kind}.|{name} wurde im Jahr {year} von {person} ausführlich "
                "beschrieben.|Heute ist {name} Gegenstand vieler Bücher, Artikel und "
                "Ausstellungen.|Der Name „{plain}“ ist fast allen Schulkindern bekannt.",
    entities=[
        _e("Merkur (Planet)", "der kleinste und sonnennächste Planet des Sonnensystems", "der ",
           "Planet Merkur"),
        _e("Merkur (Mythologie)", "der römische Gott des Handels und der Reisenden",
           aliases="Mercurius", redirect="Mercurius"),
        _e("Donau", "der zweitlängste Fluss Europas", "die "),
        _e("Rhein", "ein Strom in Mitteleuropa, der in die Nordsee mündet", "der ", "Rheinstrom",
           "Rheinstrom", ("Rhein", "s", "Die Geschichte des {e} ist gut erforscht.")),
        _e("Zugspitze", "der höchste Berg Deutschlands im Wettersteingebirge", "die "),
        _e("Wien", "die Hauptstadt und größte Stadt Österreichs", redirect="Vindobona",
           trail=("Wien", "s", "Die Bevölkerung {e} wuchs im 19. Jahrhundert stark.")),
        _e("Albert Einstein", "ein theoretischer Physiker, der die Relativitätstheorie "
           "entwickelte", aliases="Einstein", redirect="Einstein"),
        _e("Johann Wolfgang von Goethe", "ein deutscher Dichter und Naturforscher",
           aliases="Goethe", redirect="Goethe"),
        _e("Teleskop", "ein optisches Instrument, mit dem entfernte Objekte beobachtet werden",
           "das ", "Fernrohr", "Fernrohr", ("Teleskop", "e", "Moderne {e} sind sehr "
                                            "leistungsfähig.")),
        _e("Gletscher", "eine Eismasse, die sich langsam talwärts bewegt", "der ", "Ferner",
           trail=("Gletscher", "n", "In den {e} der Alpen ist viel Wasser gespeichert.")),
        _e("Bodensee", "ein großer See am Nordrand der Alpen", "der "),
        _e("Ludwig van Beethoven", "ein deutscher Komponist der Wiener Klassik",
           aliases="Beethoven", redirect="Beethoven"),
        _e("Brandenburger Tor", "ein frühklassizistisches Stadttor in Berlin", "das ",
           redirect="Brandenburger Thor"),
        _e("Geige", "ein Streichinstrument, das mit einem Bogen gespielt wird", "die ",
           "Violine", "Violine", ("Geige", "n", "Zwei {e} und ein Cello spielten in der "
                                  "Kirche.")),
        _e("Photosynthese", "die Erzeugung energiereicher Stoffe aus Licht, Wasser und "
           "Kohlendioxid", "die ", "Fotosynthese", "Fotosynthese"),
        _e("Schwarzwald", "ein Mittelgebirge im Südwesten Deutschlands", "der ",
           trail=("Schwarzwald", "es", "Die Täler des {e} sind dicht bewaldet.")),
    ])

LEXICON["ru"] = _lang(
    joiner=" ", intro="{B} {vp}.", category_ns="Категория", template_ns="Шаблон",
    redirect_word="#перенаправление", dab_template="неоднозначность",
    dab=("Меркурий", "может означать:", [
        ("Меркурий (планета)", " — ", "ближайшая к Солнцу планета"),
        ("Меркурий (мифология)", " — ", "римский бог торговли"),
        ("Меркурий (космическая программа)", " — ", "американская космическая программа")]),
    categories="География|Наука|История", category_text="В этой категории собраны статьи по "
                                                         "теме «{c}».",
    nouns={"m": "мост замок рынок сад парк вокзал собор монастырь музей театр порт дворец остров "
                "лес холм берег район квартал",
           "f": "улица площадь башня церковь крепость школа деревня гавань дорога мельница "
                "больница усадьба",
           "n": "озеро село здание поле кладбище ущелье поселение училище"},
    adjs="старый новый большой красивый известный знаменитый тихий широкий узкий высокий "
         "главный северный южный восточный западный исторический городской сельский "
         "центральный важный каменный деревянный длинный современный живописный старинный",
    vps="упоминается в старинных летописях|привлекает множество туристов|находится недалеко от "
        "центра|изображается на многих старых картах|считается символом региона|охраняется "
        "государством как памятник|описывается в нескольких книгах|часто упоминается в местных "
        "легендах|пользуется большой популярностью у путешественников|имеет долгую и сложную "
        "историю|упоминается в документах {year} года",
    people="Иван Петров|Мария Смирнова|Алексей Кузнецов|Ольга Иванова|Сергей Попов|"
           "Наталья Соколова|Дмитрий Лебедев|Елена Козлова|Николай Новиков|Анна Морозова",
    fillers="{np} {vp}.|Как пишет {person}, {np} {vp}.|В {year} году вышла книга об истории этих "
            "мест.|{person} — автор нескольких книг об этих местах.|Многие туристы приезжают "
            "сюда каждое лето.|История этих мест длинная и сложная.|Считается, что {np} {vp}.|"
            "Рядом находится {np}.|{np} и {np2} часто сравниваются друг с другом.",
    mentions="{E} упоминается во многих исследованиях.|Как пишет {person}, {E} играет важную "
             "роль в истории региона.|{E} и {np} часто сравниваются друг с другом.|До сих пор "
             "{E} остаётся важной темой исследований.|Интерес к теме «{E}» вырос после {year} "
             "года.|Для многих жителей {E} — часть повседневной жизни.",
    definitions="{B} — {kind}.|Подробное описание объекта «{name}» появилось в {year} году.|"
                "Сегодня {name} — тема многих книг, статей и выставок.|Название «{name}» знакомо "
                "почти каждому школьнику.",
    entities=[
        _e("Меркурий (планета)", "наименьшая планета Солнечной системы и ближайшая к Солнцу",
           aliases="планета Меркурий"),
        _e("Меркурий (мифология)", "римский бог торговли и покровитель путешественников",
           redirect="Меркурий (бог)"),
        _e("Волга", "крупнейшая река Европейской части России", redirect="Волга (река)"),
        _e("Байкал", "глубочайшее озеро на планете, расположенное в Восточной Сибири",
           aliases="озеро Байкал", redirect="Озеро Байкал"),
        _e("Эльбрус", "стратовулкан на Кавказе и высочайшая вершина России",
           aliases="гора Эльбрус", redirect="Гора Эльбрус"),
        _e("Санкт-Петербург", "второй по численности населения город России",
           aliases="Петербург|Питер", redirect="Ленинград"),
        _e("Дмитрий Менделеев", "русский учёный, открывший периодический закон химических "
           "элементов", aliases="Менделеев", redirect="Менделеев"),
        _e("Александр Пушкин", "русский поэт, драматург и прозаик", aliases="Пушкин",
           redirect="Пушкин"),
        _e("Телескоп", "оптический прибор для наблюдения удалённых объектов",
           aliases="оптический телескоп", common=True,
           trail=("телескоп", "ы", "Первые {e} появились в Голландии в начале XVII века.")),
        _e("Ледник", "масса льда, медленно движущаяся под действием силы тяжести",
           aliases="глетчер", common=True,
           trail=("ледник", "и", "Многие {e} Кавказа за последние десятилетия уменьшились.")),
        _e("Вулкан", "геологическое образование, через которое магма выходит на поверхность",
           common=True, trail=("вулкан", "ов", "На Камчатке находятся десятки действующих {e}.")),
        _e("Библиотека", "учреждение, которое собирает и хранит книги для читателей",
           aliases="книгохранилище", common=True),
        _e("Московский Кремль", "крепость в центре Москвы", aliases="Кремль", redirect="Кремль"),
        _e("Тихий океан", "крупнейший и самый глубокий океан Земли", aliases="Великий океан",
           redirect="Великий океан"),
        _e("Эрмитаж", "один из крупнейших художественных музеев мира",
           aliases="Государственный Эрмитаж", redirect="Государственный Эрмитаж"),
        _e("Фотосинтез", "процесс образования органических веществ из углекислого газа и воды "
           "на свету", common=True),
    ])

LEXICON["zh"] = _lang(
    joiner="", intro="{B}{vp}。", fillers_per_article=10, category_ns="Category", template_ns="Template",
    redirect_word="#重定向", dab_template="消歧义",
    dab=("长城", "可以指：", [("长城 (建筑)", "，", "中国古代的军事防御工程"),
                          ("长城 (电影)", "，", "2016年上映的电影"),
                          ("长城汽车", "，", "中国汽车制造商")]),
    categories="地理|科学|历史", category_text="本分类收录与{c}有关的条目。",
    nouns={"": "桥梁 港口 博物馆 村庄 城堡 市场 花园 铁路 岛屿 山谷 湖泊 森林 塔楼 寺庙 大学 工厂 "
               "广场 街道 车站 剧院 医院 学校 宫殿 农场 码头 公园 教堂 古镇"},
    adjs="古老 著名 美丽 安静 繁华 宽阔 狭窄 重要 现代 传统 巨大 北方 南方 高大 宏伟 偏远 热闹 幽静",
    vps="建于{year}年|在{year}年进行了修复|每年吸引大量游客|出现在许多古老的地图上|被认为是当地的象征|"
        "位于老城区附近|在{year}年的一场风暴中受损|如今是热门的旅游景点|在多部古代文献中都有记载|"
        "自{year}年起受到保护|长期归一个贵族家庭所有|常常出现在画家的作品中",
    people="王伟|李娜|张敏|刘洋|陈静|杨帆|赵磊|黄丽|周强|吴琳",
    fillers="{np}{vp}。|据{person}介绍，{np}{vp}。|{year}年，{person}写了一本关于{np}的书。|"
            "每年夏天都有很多人参观{np}和{np2}。|{np}的历史悠久而复杂。|当地报纸经常报道{np}的消息。|"
            "{year}年，一个关于{np}的小型展览开幕了。|附近还有{np}。",
    mentions="{E}在许多研究中都被提到。|{year}年，{person}出版了一本关于{E}的书。|研究人员将{np}与{E}"
             "进行了比较。|{E}在{np}的历史上发挥了重要作用。|一些游客专门来这里了解{E}。|{year}年发表了"
             "一篇关于{E}的著名文章。|当地博物馆收藏了大量与{E}有关的资料。",
    definitions="{B}是{kind}。|{year}年，{person}首次详细描述了{name}。|如今，{name}是许多书籍、"
                "文章和展览的主题。|几乎每个学生都知道{name}这个名字。",
    entities=[
        _e("长城 (建筑)", "中国古代在北方修建的大规模军事防御工程", aliases="万里长城",
           redirect="万里长城"),
        _e("长城 (电影)", "2016年上映的一部由张艺谋执导的电影"),
        _e("长江", "亚洲最长的河流，也是世界第三长河", aliases="扬子江", redirect="扬子江"),
        _e("黄河", "中国第二长河，被称为中华民族的母亲河", aliases="母亲河"),
        _e("珠穆朗玛峰", "喜马拉雅山脉的主峰，也是世界最高峰", aliases="珠峰", redirect="珠峰"),
        _e("北京", "中华人民共和国的首都", aliases="北京市", redirect="北平"),
        _e("上海", "中国最大的城市之一，位于长江入海口", aliases="沪", redirect="上海市"),
        _e("孔子", "春秋时期的思想家和教育家，儒家学派的创始人", aliases="孔夫子", redirect="孔丘"),
        _e("李白", "唐代著名的浪漫主义诗人", aliases="李太白", redirect="诗仙"),
        _e("望远镜", "一种利用透镜或反射镜观察远处物体的光学仪器", aliases="天文望远镜"),
        _e("冰川", "由积雪长期压实形成并缓慢流动的巨大冰体", aliases="冰河", redirect="冰河"),
        _e("火山", "地壳中岩浆喷出地表形成的山体", aliases="活火山"),
        _e("故宫", "明清两代的皇家宫殿，位于北京中轴线的中心", aliases="紫禁城", redirect="紫禁城"),
        _e("太湖", "中国第三大淡水湖，位于江苏和浙江两省交界处"),
        _e("大熊猫", "生活在中国西南地区山林中的一种熊科动物", aliases="熊猫", redirect="熊猫"),
        _e("光合作用", "植物利用光能把二氧化碳和水合成有机物的过程"),
    ])

LEXICON["th"] = _lang(
    joiner=" ", intro="{B}{vp}", category_ns="หมวดหมู่", template_ns="แม่แบบ",
    redirect_word="#เปลี่ยนทาง", dab_template="แก้ความกำกวม",
    dab=("ปรอท", "อาจหมายถึง:", [("ปรอท (ธาตุ)", " ", "ธาตุเคมีที่เป็นโลหะเหลว"),
                               ("ปรอท (ภาพยนตร์)", " ", "ภาพยนตร์ไทย"),
                               ("ดาวพุธ", " ", "ดาวเคราะห์ที่อยู่ใกล้ดวงอาทิตย์ที่สุด")]),
    categories="ภูมิศาสตร์|วิทยาศาสตร์|ประวัติศาสตร์", category_text="หมวดหมู่นี้รวบรวมบทความเกี่ยวกับ{c}",
    nouns={"": "สะพาน ท่าเรือ พิพิธภัณฑ์ หมู่บ้าน ปราสาท ตลาด สวน ทางรถไฟ เกาะ หุบเขา ทะเลสาบ ป่า "
               "หอคอย วัด มหาวิทยาลัย โรงงาน จัตุรัส ถนน สถานี โรงละคร โรงพยาบาล โรงเรียน "
               "พระราชวัง ฟาร์ม โบสถ์ สนามบิน"},
    adjs="เก่า ใหม่ ใหญ่ เล็ก สวยงาม เงียบสงบ กว้าง แคบ สำคัญ ทันสมัย โบราณ มีชื่อเสียง ยาว สูง ห่างไกล",
    vps="สร้างขึ้นในปี {year}|ได้รับการบูรณะในปี {year}|ดึงดูดนักท่องเที่ยวจำนวนมากทุกปี|ปรากฏอยู่ในแผนที่เก่า"
        "หลายฉบับ|ถือเป็นสัญลักษณ์ของภูมิภาค|ตั้งอยู่ใกล้กับใจกลางเมืองเก่า|ได้รับความเสียหายจากพายุในปี {year}"
        "|เป็นสถานที่ท่องเที่ยวยอดนิยมในปัจจุบัน|ถูกกล่าวถึงในบันทึกโบราณหลายฉบับ|ได้รับการคุ้มครองเป็น"
        "โบราณสถาน|มีประวัติศาสตร์ยาวนานและซับซ้อน",
    people="สมชาย ใจดี|สมศรี รักไทย|ประเสริฐ วงศ์สวัสดิ์|มาลี ศรีสุข|วิชัย ทองดี|สุนีย์ แก้วมณี|"
           "อนันต์ บุญมา|พรทิพย์ สายทอง",
    fillers="{np}{vp}|ตามข้อมูลของ{person} {np}{vp}|ในปี {year} {person}ได้เขียนหนังสือเกี่ยวกับ{np}|"
            "ทุกฤดูร้อนมีผู้คนจำนวนมากมาเยี่ยมชม{np}และ{np2}|ประวัติของ{np}ยาวนานและซับซ้อน|"
            "หนังสือพิมพ์ท้องถิ่นมักรายงานข่าวเกี่ยวกับ{np}|ในปี {year} มีการจัดนิทรรศการเกี่ยวกับ{np}|"
            "ใกล้ ๆ กันยังมี{np}",
    mentions="{E}ถูกกล่าวถึงในงานวิจัยจำนวนมาก|ในปี {year} {person}ได้ตีพิมพ์หนังสือเกี่ยวกับ{E}|"
             "นักวิจัยได้เปรียบเทียบ{np}กับ{E}|{E}มีบทบาทสำคัญในประวัติศาสตร์ของ{np}|นักท่องเที่ยวบางคน"
             "มาที่นี่เพื่อเรียนรู้เกี่ยวกับ{E}|ในปี {year} บทความที่มีชื่อเสียงเกี่ยวกับ{E}ได้รับการตีพิมพ์|"
             "พิพิธภัณฑ์ท้องถิ่นมีของสะสมจำนวนมากที่เกี่ยวข้องกับ{E}",
    definitions="{B}เป็น{kind}|ในปี {year} {person}ได้บรรยายเกี่ยวกับ{name}อย่างละเอียดเป็นครั้งแรก|"
                "ปัจจุบัน{name}เป็นหัวข้อของหนังสือ บทความ และนิทรรศการมากมาย|นักเรียนเกือบทุกคน"
                "รู้จักชื่อ{name}",
    entities=[
        _e("ปรอท (ธาตุ)", "ธาตุเคมีที่เป็นโลหะซึ่งเป็นของเหลวที่อุณหภูมิห้อง", aliases="ธาตุปรอท"),
        _e("ดาวพุธ", "ดาวเคราะห์ที่เล็กที่สุดและอยู่ใกล้ดวงอาทิตย์มากที่สุดในระบบสุริยะ",
           aliases="ดาวเคราะห์พุธ"),
        _e("แม่น้ำเจ้าพระยา", "แม่น้ำสายหลักของประเทศไทยที่ไหลผ่านกรุงเทพมหานคร",
           aliases="เจ้าพระยา", redirect="เจ้าพระยา"),
        _e("แม่น้ำโขง", "แม่น้ำสายยาวที่ไหลผ่านหลายประเทศในเอเชียตะวันออกเฉียงใต้", aliases="โขง",
           redirect="แม่โขง"),
        _e("ดอยอินทนนท์", "ยอดเขาที่สูงที่สุดในประเทศไทย", aliases="อินทนนท์"),
        _e("กรุงเทพมหานคร", "เมืองหลวงและเมืองที่มีประชากรมากที่สุดของประเทศไทย",
           aliases="กรุงเทพฯ", redirect="กรุงเทพฯ"),
        _e("เชียงใหม่", "เมืองใหญ่ทางภาคเหนือของประเทศไทย", aliases="นครเชียงใหม่"),
        _e("สุนทรภู่", "กวีเอกของไทยในสมัยรัตนโกสินทร์ตอนต้น", aliases="พระสุนทรโวหาร",
           redirect="พระสุนทรโวหาร (ภู่)"),
        _e("วัดพระแก้ว", "วัดสำคัญในพระบรมมหาราชวังที่ประดิษฐานพระแก้วมรกต",
           aliases="วัดพระศรีรัตนศาสดาราม", redirect="วัดพระศรีรัตนศาสดาราม"),
        _e("กล้องโทรทรรศน์", "อุปกรณ์ทางแสงที่ใช้สำหรับมองวัตถุที่อยู่ไกล", aliases="กล้องส่องทางไกล"),
        _e("ธารน้ำแข็ง", "มวลน้ำแข็งขนาดใหญ่ที่เคลื่อนที่อย่างช้า ๆ"),
        _e("ภูเขาไฟ", "ภูเขาที่เกิดจากการปะทุของหินหนืดจากใต้เปลือกโลก"),
        _e("ช้างไทย", "ช้างเอเชียที่เป็นสัตว์ประจำชาติของประเทศไทย", aliases="ช้าง"),
        _e("ต้มยำกุ้ง", "อาหารไทยรสเปรี้ยวเผ็ดที่มีชื่อเสียงไปทั่วโลก", aliases="ต้มยำ",
           redirect="ต้มยำ"),
        _e("อยุธยา", "ราชธานีเก่าของไทยที่ปัจจุบันเป็นมรดกโลก", aliases="กรุงศรีอยุธยา",
           redirect="กรุงศรีอยุธยา"),
        _e("การสังเคราะห์ด้วยแสง", "กระบวนการที่พืชใช้พลังงานแสงสร้างน้ำตาลจากคาร์บอนไดออกไซด์และน้ำ"),
    ])

LEXICON["ar"] = _lang(
    joiner=" ", intro="{B} {vp}.", category_ns="تصنيف", template_ns="قالب",
    redirect_word="#تحويل", dab_template="توضيح",
    dab=("عطارد", "قد يشير إلى:", [("عطارد (كوكب)", "، ", "أقرب الكواكب إلى الشمس"),
                                  ("عطارد (أساطير)", "، ", "إله روماني"),
                                  ("عطارد (صحيفة)", "، ", "صحيفة عربية")]),
    categories="جغرافيا|علوم|تاريخ", category_text="يضم هذا التصنيف مقالات عن {c}.",
    nouns={"m": "الجسر الميناء المتحف السوق البرج القصر الشارع المسجد الوادي المصنع الملعب الحي "
                "الطريق المطار السد المعبد",
           "f": "المدينة القرية الحديقة الجزيرة القلعة الجامعة المدرسة البحيرة الغابة الساحة "
                "المحطة الكنيسة المنارة"},
    adjs="القديم الكبير الصغير الجديد الجميل الشهير الهادئ الواسع الضيق المهم الحديث الطويل "
         "العالي البعيد الشمالي الجنوبي الشرقي الغربي التاريخي الرئيسي",
    vps="من أشهر معالم المنطقة|في وسط البلدة القديمة|ضمن قائمة التراث الوطني|محط اهتمام الباحثين "
        "منذ عام {year}|على بعد ساعة من العاصمة|جزء من تاريخ المنطقة الطويل|مقصد للسياح من كل أنحاء "
        "العالم|موضوع للعديد من الكتب والدراسات|من أقدم المواقع في البلاد|تحت حماية الدولة منذ عام "
        "{year}",
    people="أحمد علي|فاطمة حسن|محمد إبراهيم|مريم يوسف|خالد عبد الله|سارة محمود|عمر خليل|ليلى سعيد",
    fillers="{np} {vp}.|زار الباحثون {np} في عام {year}.|كتب {person} عن {np} في عام {year}.|"
            "يتحدث الناس كثيرا عن {np} و{np2}.|ورد ذكر {np} في كتب الرحالة القدماء.|افتتح معرض "
            "صغير عن {np} في عام {year}.|تنشر الصحف المحلية أخبارا عن {np} باستمرار.|وبالقرب من "
            "{np} توجد حديقة صغيرة.",
    mentions="ورد ذكر {E} في كثير من الدراسات.|في عام {year} نشر {person} كتابا عن {E}.|قارن "
             "الباحثون بين {np} و{E}.|يهتم كثير من الزوار بمعرفة المزيد عن {E}.|ظهرت في عام "
             "{year} مقالة مشهورة عن {E}.|يضم المتحف المحلي مجموعة كبيرة تتعلق بموضوع {E}.|"
             "تحدث {person} في محاضرة عن {E}.",
    definitions="{B} {kind}.|وصف {person} {name} بالتفصيل لأول مرة في عام {year}.|واليوم أصبح "
                "موضوع {name} حاضرا في كثير من الكتب والمقالات والمعارض.|يعرف معظم تلاميذ "
                "المدارس اسم {name}.",
    entities=[
        _e("عطارد (كوكب)", "هو أصغر كواكب المجموعة الشمسية وأقربها إلى الشمس",
           aliases="كوكب عطارد"),
        _e("عطارد (أساطير)", "هو إله التجارة والمسافرين في الأساطير الرومانية",
           aliases="ميركوري", redirect="ميركوري"),
        _e("نهر النيل", "هو أطول نهر في قارة أفريقيا", aliases="النيل", redirect="النيل"),
        _e("نهر الفرات", "هو أحد أكبر الأنهار في غرب آسيا", aliases="الفرات", redirect="الفرات"),
        _e("القاهرة", "هي عاصمة جمهورية مصر العربية وأكبر مدنها", aliases="المحروسة",
           redirect="مدينة القاهرة"),
        _e("دمشق", "هي عاصمة سوريا وإحدى أقدم المدن المأهولة في العالم", aliases="الشام",
           redirect="مدينة دمشق"),
        _e("ابن سينا", "هو طبيب وفيلسوف من العصر الذهبي للحضارة الإسلامية",
           aliases="الشيخ الرئيس", redirect="أبو علي ابن سينا"),
        _e("المتنبي", "هو شاعر عربي من العصر العباسي", aliases="أبو الطيب المتنبي",
           redirect="أبو الطيب المتنبي"),
        _e("الأهرامات", "هي مبان حجرية ضخمة بناها المصريون القدماء", aliases="أهرامات الجيزة",
           redirect="أهرامات الجيزة"),
        _e("الصحراء الكبرى", "هي أكبر صحراء حارة في العالم وتقع في شمال أفريقيا"),
        _e("تلسكوب", "هو أداة بصرية تستخدم لرؤية الأجسام البعيدة", aliases="المقراب",
           redirect="مقراب"),
        _e("بركان", "هو فتحة في قشرة الأرض تخرج منها الحمم والغازات", aliases="البركان"),
        _e("الخط العربي", "هو فن كتابة الحروف العربية بأسلوب جميل", aliases="فن الخط"),
        _e("عود (آلة موسيقية)", "هو آلة موسيقية وترية شرقية", aliases="آلة العود"),
        _e("البتراء", "هي مدينة أثرية في جنوب الأردن منحوتة في الصخر",
           aliases="المدينة الوردية", redirect="بترا"),
        _e("التمثيل الضوئي", "هو عملية تحويل الطاقة الضوئية إلى طاقة كيميائية في النباتات",
           aliases="البناء الضوئي", redirect="البناء الضوئي"),
    ])

LEXICON["hi"] = _lang(
    joiner=" ", intro="{B} {vp}।", category_ns="श्रेणी", template_ns="साँचा",
    redirect_word="#अनुप्रेषित", dab_template="बहुविकल्पी शब्द",
    dab=("बुध", "का अर्थ हो सकता है:", [("बुध (ग्रह)", ", ", "सूर्य के सबसे निकट का ग्रह"),
                                       ("बुध (देवता)", ", ", "हिन्दू धर्म में एक देवता"),
                                       ("बुधवार", ", ", "सप्ताह का एक दिन")]),
    categories="भूगोल|विज्ञान|इतिहास", category_text="इस श्रेणी में {c} से संबंधित लेख हैं।",
    nouns={"m": "पुल बंदरगाह संग्रहालय गाँव किला बाज़ार बगीचा महल मंदिर पहाड़ तालाब जंगल कारखाना "
                "विश्वविद्यालय अस्पताल",
           "f": "झील सड़क इमारत हवेली मस्जिद घाटी गली सराय बस्ती पाठशाला मीनार"},
    adjs="पुराना नया बड़ा छोटा लंबा ऊँचा सुंदर प्रसिद्ध प्राचीन विशाल शांत महत्वपूर्ण आधुनिक "
         "ऐतिहासिक उत्तरी दक्षिणी पूर्वी पश्चिमी",
    vps="पुराने नक्शों में दर्ज है|क्षेत्र का एक प्रतीक है|पर्यटकों के बीच बहुत लोकप्रिय है|सरकार द्वारा "
        "संरक्षित है|कई पुस्तकों में वर्णित है|सन् {year} से एक राष्ट्रीय धरोहर है|शोधकर्ताओं के लिए "
        "महत्वपूर्ण है|स्थानीय लोगों के जीवन का हिस्सा है|अपनी शांति के लिए प्रसिद्ध है|नदी के किनारे "
        "स्थित है",
    people="राम शर्मा|सीता वर्मा|अमित कुमार|प्रिया सिंह|राजेश गुप्ता|अनीता मिश्रा|सुरेश यादव|कविता जोशी",
    fillers="{np} {vp}।|{person} के अनुसार {np} {vp}।|सन् {year} में {person} ने इस क्षेत्र के बारे "
            "में एक पुस्तक लिखी।|हर साल बहुत से लोग इस क्षेत्र में घूमने आते हैं।|इस क्षेत्र का इतिहास "
            "लंबा और जटिल है।|स्थानीय समाचार पत्र अक्सर इस जगह के बारे में लिखते हैं।|पास में ही {np} "
            "भी है।|सन् {year} में यहाँ एक छोटी प्रदर्शनी लगी।",
    mentions="{E} का उल्लेख कई अध्ययनों में मिलता है।|सन् {year} में {person} ने {E} पर एक पुस्तक "
             "प्रकाशित की।|शोधकर्ताओं ने इस क्षेत्र की तुलना {E} से की है।|{E} इस क्षेत्र के इतिहास में "
             "बहुत महत्वपूर्ण है।|कुछ पर्यटक केवल {E} के बारे में जानने के लिए यहाँ आते हैं।|सन् {year} "
             "में {E} पर एक प्रसिद्ध लेख प्रकाशित हुआ।|स्थानीय संग्रहालय में {E} से जुड़ी कई वस्तुएँ हैं।",
    definitions="{B} {kind}।|सन् {year} में {person} ने पहली बार {name} का विस्तृत वर्णन किया।|आज "
                "{name} पर अनेक पुस्तकें, लेख और प्रदर्शनियाँ मौजूद हैं।|लगभग हर विद्यार्थी {name} "
                "का नाम जानता है।",
    entities=[
        _e("बुध (ग्रह)", "सौरमंडल का सबसे छोटा और सूर्य के सबसे निकट का ग्रह है", aliases="बुध ग्रह"),
        _e("बुध (देवता)", "हिन्दू धर्म में चंद्रमा के पुत्र माने जाने वाले देवता हैं"),
        _e("गंगा नदी", "भारत की सबसे पवित्र और प्रमुख नदियों में से एक है", aliases="गंगा",
           redirect="गंगा"),
        _e("यमुना नदी", "गंगा की सबसे बड़ी सहायक नदी है", aliases="यमुना", redirect="यमुना"),
        _e("हिमालय", "एशिया की एक विशाल पर्वत श्रृंखला है", aliases="हिमालय पर्वत",
           redirect="हिमालय पर्वत"),
        _e("दिल्ली", "भारत की राजधानी और एक प्राचीन नगर है", aliases="दिल्ली शहर", redirect="देहली"),
        _e("वाराणसी", "गंगा के किनारे बसा एक प्राचीन धार्मिक नगर है", aliases="काशी|बनारस",
           redirect="बनारस"),
        _e("महात्मा गांधी", "भारत के स्वतंत्रता संग्राम के प्रमुख नेता थे", aliases="गांधीजी|बापू",
           redirect="मोहनदास करमचंद गांधी"),
        _e("रवीन्द्रनाथ ठाकुर", "नोबेल पुरस्कार से सम्मानित बांग्ला कवि और लेखक थे",
           aliases="टैगोर|गुरुदेव", redirect="रवीन्द्रनाथ टैगोर"),
        _e("ताजमहल", "आगरा में यमुना नदी के किनारे स्थित सफ़ेद संगमरमर का एक मकबरा है",
           aliases="ताज", redirect="ताज महल"),
        _e("दूरबीन", "दूर की वस्तुओं को देखने का एक प्रकाशीय यंत्र है", aliases="दूरदर्शी",
           redirect="टेलीस्कोप"),
        _e("हिमनद", "बर्फ़ का एक विशाल पिंड है जो धीरे-धीरे खिसकता है", aliases="ग्लेशियर",
           redirect="ग्लेशियर"),
        _e("ज्वालामुखी", "पृथ्वी की सतह का वह छिद्र है जिससे लावा और गैसें निकलती हैं"),
        _e("सितार", "एक प्रसिद्ध भारतीय तार वाद्य है"),
        _e("योग", "शरीर और मन को स्वस्थ रखने की एक प्राचीन भारतीय पद्धति है", aliases="योगाभ्यास"),
        _e("प्रकाश संश्लेषण", "वह प्रक्रिया है जिससे पौधे सूर्य के प्रकाश की सहायता से भोजन बनाते हैं"),
    ])
